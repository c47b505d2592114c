import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { createCompleteOperation } from '../../activities/complete-operation';
import { createPool, type Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { connectTemporalClient } from '../../src/temporal/client';
import { createApiTenant, postOperation, rawPost, startTestApi, type TestApi } from '../helpers/api';
import { testInfra } from '../helpers/infra';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';
import type { OperationFailure } from '../../workflows/failure-types';

/**
 * Every row of the contract's table against the running facade, with real
 * Temporal and PostgreSQL. "Stays running" is real too: a task queue that no
 * worker polls.
 */
describe('POST /v1/operations/{type}: the contract table', () => {
  let pool: Pool;
  let temporal: Client;
  let tenant: { tenantId: string; apiKey: string };
  let idleApi: TestApi; // no worker: operations stay running
  let liveApi: TestApi; // a worker completes operations
  let worker: TestWorker;

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, worker, api: liveApi, close } = await startTestStack({ worker: {}, api: {} }));
    tenant = await createApiTenant(pool);
    idleApi = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('idle') });
  });
  afterAll(async () => {
    await idleApi.close();
    await close();
  });

  const reservations = async (key: string) =>
    Number((await pool.query('SELECT count(*) FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0].count);

  it('accepts a first request with 202, a Location and a running resource', async () => {
    const key = randomUUID();
    const response = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    expect(response.status).toBe(202);
    expect(response.headers.get('location')).toBe(`/v1/operations/generate-content/${key}`);
    expect(response.json).toMatchObject({ operationType: 'generate-content', idempotencyKey: key, status: 'running', result: null });
    expect(response.json!.links.temporalUi).toContain(encodeURIComponent(response.json!.workflowId));
  });

  it('answers a repeat of a running operation with 409, Retry-After and Location', async () => {
    const key = randomUUID();
    await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    const repeat = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    expect(repeat.status).toBe(409);
    expect(repeat.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(repeat.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(repeat.headers.get('location')).toBe(`/v1/operations/generate-content/${key}`);
    expect(repeat.json).toMatchObject({ type: 'https://onceflow.dev/problems/operation-in-progress', status: 409, idempotencyKey: key, operationType: 'generate-content' });
  });

  it('holds a repeat with Prefer: wait and still answers 409 when the run does not finish in time', async () => {
    const key = randomUUID();
    await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    const repeat = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=1' } });
    expect(repeat.status).toBe(409);
  });

  it('answers a first request with Prefer: wait with 200 and the result when it finishes in time', async () => {
    const key = randomUUID();
    const response = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('preference-applied')).toBe('wait=20');
    expect(response.json).toMatchObject({ status: 'succeeded', idempotencyKey: key });
    expect(response.json!.completedAt).not.toBeNull();
  });

  it('replays a finished operation with 200, Idempotent-Replayed, the first-seen time and byte-identical result', async () => {
    const key = randomUUID();
    const before = Date.now();
    const first = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
    const replay1 = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key });
    const replay2 = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key });
    expect(replay1.status).toBe(200);
    expect(replay1.headers.get('idempotent-replayed')).toBe('true');
    const firstSeen = Number(replay1.headers.get('idempotency-first-seen'));
    expect(firstSeen).toBeGreaterThanOrEqual(before);
    expect(firstSeen).toBeLessThanOrEqual(Date.now());
    expect(replay2.headers.get('idempotency-first-seen')).toBe(String(firstSeen));
    const resultBytes = (text: string) => text.slice(text.indexOf('"result":'), text.indexOf(',"error":'));
    expect(resultBytes(replay1.text)).toBe(resultBytes(first.text));
    expect(replay2.text).toBe(replay1.text);
  });

  it('replays with Prefer: wait as 200 once a running operation finishes', async () => {
    // No worker polls this queue until the repeat is already waiting, so the
    // repeat certainly sees the run in progress and waits for it.
    const taskQueue = uniqueTaskQueue('wait-repeat');
    const api = await startTestApi({ pool, temporal, taskQueue });
    let late: TestWorker | undefined;
    try {
      const key = randomUUID();
      expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key })).status).toBe(202);
      const waiting = postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=30' } });
      await new Promise((resolve) => setTimeout(resolve, 500));
      late = await startTestWorker({ pool, taskQueue });
      const repeat = await waiting;
      expect(repeat.status).toBe(200);
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');
      expect(repeat.headers.get('preference-applied')).toBe('wait=30');
      expect(repeat.json).toMatchObject({ status: 'succeeded', idempotencyKey: key });
    } finally {
      await late?.stop();
      await api.close();
    }
  });

  it('answers a repeat of a finished operation from PostgreSQL alone, with Temporal unreachable', async () => {
    const key = randomUUID();
    const first = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
    expect(first.status).toBe(200);
    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await findFreePort()}` }), namespace: testInfra().temporalNamespace });
    const cutOff = await startTestApi({ pool, temporal: deadTemporal, taskQueue: worker.taskQueue });
    try {
      const repeat = await postOperation(cutOff.baseUrl, { apiKey: tenant.apiKey, key });
      expect(repeat.status).toBe(200);
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');
      expect(repeat.text).toBe((await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key })).text);
      // The same facade cannot start anything: a new key is 503.
      expect((await postOperation(cutOff.baseUrl, { apiKey: tenant.apiKey, key: randomUUID() })).status).toBe(503);
    } finally {
      await cutOff.close();
    }
  });

  it('refuses the same key with a different payload with 422, but not a change of non-essential metadata', async () => {
    const key = randomUUID();
    await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'A', metadata: { traceId: 't1' } } });
    const sameButTrace = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, body: { metadata: { traceId: 't2' }, prompt: 'A' } });
    expect(sameButTrace.status).toBe(409);
    const different = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'B' } });
    expect(different.status).toBe(422);
    expect(different.json).toMatchObject({ type: 'https://onceflow.dev/problems/idempotency-key-reused', idempotencyKey: key });
  });

  it.each([
    ['missing', null, 'idempotency-key-missing'],
    ['too long', 'k'.repeat(256), 'idempotency-key-invalid'],
    ['10,000 characters', 'k'.repeat(10_000), 'idempotency-key-invalid'],
    ['non-ASCII', 'clé-ü', 'idempotency-key-invalid'],
  ])('answers 400 for a %s key and reserves nothing', async (_name, key, problem) => {
    const before = Number((await pool.query('SELECT count(*) FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0].count);
    const headers: Record<string, string> = {};
    let response;
    if (key !== null && /[^\x20-\x7e]/.test(key)) {
      // fetch refuses non-Latin-1 header values; send the raw UTF-8 bytes with node:http
      response = await rawPost(idleApi.baseUrl, { apiKey: tenant.apiKey, keys: [Buffer.from(key, 'utf8').toString('latin1')] });
    } else {
      response = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, headers });
    }
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ type: `https://onceflow.dev/problems/${problem}`, status: 400 });
    const after = Number((await pool.query('SELECT count(*) FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0].count);
    expect(after).toBe(before);
  });

  it('answers 400 for two Idempotency-Key headers instead of joining them', async () => {
    const response = await rawPost(idleApi.baseUrl, { apiKey: tenant.apiKey, keys: ['a', 'b'] });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/idempotency-key-invalid' });
  });

  it('answers 400 invalid-request with issues for a body that fails the schema, reserving nothing', async () => {
    const key = randomUUID();
    const response = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: '', temperature: 7 } });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/invalid-request' });
    expect(response.json!.issues.map((i: { path: string }) => i.path).sort()).toEqual(['/prompt', '/temperature']);
    expect(await reservations(key)).toBe(0);
  });

  it('answers 401 without a key or with an unknown key', async () => {
    expect((await postOperation(idleApi.baseUrl, { key: randomUUID() })).status).toBe(401);
    const unknown = await postOperation(idleApi.baseUrl, { apiKey: 'not-a-key', key: randomUUID() });
    expect(unknown.status).toBe(401);
    expect(unknown.json).toMatchObject({ type: 'https://onceflow.dev/problems/unauthorized' });
  });

  it('answers 404 for an unknown operation type', async () => {
    const response = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), type: 'generate-poem' });
    expect(response.status).toBe(404);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/unknown-operation-type', operationType: 'generate-poem' });
  });

  it('answers 415 for a body that is not application/json', async () => {
    const response = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), contentType: 'text/plain', rawBody: 'hello' });
    expect(response.status).toBe(415);
  });

  it('answers 413 for a body over the limit', async () => {
    const small = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue(), config: { ONCEFLOW_BODY_LIMIT_BYTES: 1024 } });
    try {
      const response = await postOperation(small.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt: 'x'.repeat(2048) } });
      expect(response.status).toBe(413);
      expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/payload-too-large' });
    } finally {
      await small.close();
    }
  });

  it('answers 429 with Retry-After when a tenant exceeds its rate limit, leaving other tenants alone', async () => {
    const limited = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue(), config: { ONCEFLOW_RATE_LIMIT_PER_MINUTE: 3 } });
    const other = await createApiTenant(pool);
    try {
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await postOperation(limited.baseUrl, { apiKey: tenant.apiKey, key: randomUUID() })).status);
      expect(statuses).toEqual([202, 202, 202, 429, 429]);
      const limitedResponse = await postOperation(limited.baseUrl, { apiKey: tenant.apiKey, key: randomUUID() });
      expect(limitedResponse.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(limitedResponse.json).toMatchObject({ type: 'https://onceflow.dev/problems/rate-limited', status: 429 });
      expect((await postOperation(limited.baseUrl, { apiKey: other.apiKey, key: randomUUID() })).status).toBe(202);
    } finally {
      await limited.close();
    }
  });

  it('answers 503 with Retry-After when PostgreSQL is unreachable', async () => {
    const deadPool = createPool({ connectionString: `postgres://x:y@127.0.0.1:${await findFreePort()}/none` });
    const api = await startTestApi({ pool: deadPool, temporal, taskQueue: uniqueTaskQueue() });
    try {
      // auth needs the database too, so the answer is 503 before anything else
      const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID() });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/service-unavailable' });
    } finally {
      await api.close();
      await deadPool.end();
    }
  });

  it('answers 503 when Temporal is unreachable, and the next request with the key starts the workflow', async () => {
    const key = randomUUID();
    const deadTemporal = await connectTemporalClient({ address: `127.0.0.1:${await findFreePort()}`, namespace: 'default', connectTimeoutMs: 500 }).catch(() => undefined);
    // Connecting lazily fails at once on a closed port; a client whose calls fail is what we need.
    const brokenClient = deadTemporal ?? (await brokenTemporalClient());
    const broken = await startTestApi({ pool, temporal: brokenClient, taskQueue: worker.taskQueue });
    try {
      const failed = await postOperation(broken.baseUrl, { apiKey: tenant.apiKey, key });
      expect(failed.status).toBe(503);
      expect(failed.headers.get('retry-after')).toMatch(/^\d+$/);
      const { rows } = await pool.query('SELECT status FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
      expect(rows).toEqual([{ status: 'reserved' }]);
    } finally {
      await broken.close();
    }
    // The retry (same key, same body) on a healthy facade, once the reservation is stale, starts and finishes it.
    const later = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue, clock: () => Date.now() + 60_000 });
    try {
      const retried = await postOperation(later.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
      expect(retried.status).toBe(200);
      expect(retried.json).toMatchObject({ status: 'succeeded' });
    } finally {
      await later.close();
    }
  });

  it('replays a business failure with its status, and lets a released failure start a new run under the same key', async () => {
    const complete = createCompleteOperation({ pool });
    const finishAs = async (key: string, error: { type: OperationFailure; retryable: boolean }) => {
      await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
      const { rows } = await pool.query('SELECT operation_id, workflow_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
      await complete({
        operationId: rows[0].operation_id, workflowId: rows[0].workflow_id, tenantId: tenant.tenantId,
        operationType: 'generate-content', idempotencyKey: key, outcome: 'failed',
        error: { ...error, detail: 'injected by the test' },
      });
      // The workflow's last step is this finishing phase; its run then closes. Here no worker
      // runs it, so end the run the way its completion would.
      await temporal.workflow.getHandle(rows[0].workflow_id).terminate('test: finished by the injected failure');
      return rows[0].operation_id as string;
    };
    const rejectedKey = randomUUID();
    await finishAs(rejectedKey, { type: 'prompt-rejected', retryable: false });
    const replay = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key: rejectedKey });
    expect(replay.status).toBe(422);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.json).toMatchObject({ type: 'https://onceflow.dev/problems/prompt-rejected', operation: { status: 'failed', idempotencyKey: rejectedKey } });

    const exhaustedKey = randomUUID();
    const firstOperation = await finishAs(exhaustedKey, { type: 'provider-failure', retryable: true });
    const again = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key: exhaustedKey, headers: { prefer: 'wait=20' } });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    const { rows } = await pool.query('SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, exhaustedKey]);
    expect(rows[0].operation_id).not.toBe(firstOperation);
  });

  it('keeps tenants apart: the same key under two tenants gives two operations, and a tenant cannot read another’s', async () => {
    const other = await createApiTenant(pool);
    const key = randomUUID();
    const mine = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'mine' } });
    const theirs = await postOperation(idleApi.baseUrl, { apiKey: other.apiKey, key, body: { prompt: 'theirs' } });
    expect(mine.status).toBe(202);
    expect(theirs.status).toBe(202);
    expect(theirs.json!.workflowId).not.toBe(mine.json!.workflowId);
    const read = await fetch(`${idleApi.baseUrl}/v1/operations/generate-content/${key}`, { headers: { authorization: `Bearer ${other.apiKey}` } });
    expect(((await read.json()) as { workflowId: string }).workflowId).toBe(theirs.json!.workflowId);
    const stranger = await createApiTenant(pool);
    const hidden = await fetch(`${idleApi.baseUrl}/v1/operations/generate-content/${key}`, { headers: { authorization: `Bearer ${stranger.apiKey}` } });
    expect(hidden.status).toBe(404);
  });

  it('expires a key after retention: GET answers 404 and the key starts a new operation', async () => {
    let now = Date.parse('2026-11-22T10:00:00.000Z');
    const clocked = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue, clock: () => now });
    try {
      const key = randomUUID();
      const first = await postOperation(clocked.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
      expect(first.status).toBe(200);
      const read = (k: string) => fetch(`${clocked.baseUrl}/v1/operations/generate-content/${k}`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
      now += 23 * 3_600_000;
      expect((await read(key)).status).toBe(200);
      now += 2 * 3_600_000; // 25 h after the first request: past the 24 h retention
      expect((await read(key)).status).toBe(404);
      const again = await postOperation(clocked.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'a new request' }, headers: { prefer: 'wait=20' } });
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
      expect(again.json!.workflowId).toBe(first.json!.workflowId);
      expect(again.json!.runId).not.toBe(first.json!.runId);
    } finally {
      await clocked.close();
    }
  });

  it('answers GET with the operation resource', async () => {
    const key = randomUUID();
    const created = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    const read = await fetch(`${idleApi.baseUrl}/v1/operations/generate-content/${encodeURIComponent(key)}`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(read.status).toBe(200);
    // GET of a running operation adds where it stands (contract v1.1); the rest is the 202's resource.
    const { progress, ...resource } = (await read.json()) as Record<string, unknown>;
    expect(resource).toEqual(created.json);
    expect(progress).toMatchObject({ step: expect.any(String), attempts: 0, startedAt: created.json!.createdAt });
    const missing = await fetch(`${idleApi.baseUrl}/v1/operations/generate-content/${randomUUID()}`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(missing.status).toBe(404);
  });
});

/** A client whose every call fails fast, as when the Temporal frontend went away after we connected. */
async function brokenTemporalClient(): Promise<Client> {
  const port = await findFreePort();
  const { Client: TemporalClient, Connection } = await import('@temporalio/client');
  const connection = Connection.lazy({ address: `127.0.0.1:${port}` });
  return new TemporalClient({ connection, namespace: testInfra().temporalNamespace });
}

