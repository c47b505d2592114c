import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { OnceflowClient } from '../../src/client';
import { createPool, type Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { createApiTenant, startTestApi, type TestApi } from '../helpers/api';
import { testInfra } from '../helpers/infra';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { startFaultProxy, startHttpFaultProxy } from './fault-proxy';
import { startTestStack } from '../helpers/stack';

/**
 * The client against the real facade (buildApp), real Temporal and real
 * PostgreSQL, with faults injected on the wire: whatever goes wrong, one
 * call is one operation — one row, one workflow run, one bill.
 */
describe('OnceflowClient against the running facade', () => {
  let pool: Pool;
  let temporal: Client;
  let tenant: { tenantId: string; apiKey: string };
  let worker: TestWorker;
  let api: TestApi;
  const cleanups: (() => Promise<unknown>)[] = [];

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, worker, api, close } = await startTestStack({ worker: {}, api: {} }));
    tenant = await createApiTenant(pool, 'client');
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await close();
  });

  const apiPort = () => Number(new URL(api.baseUrl).port);

  /** Operation rows, workflow executions (Temporal visibility, every run of the workflow id) and ledger entries of one key. */
  async function footprint(key: string, tenantId = tenant.tenantId) {
    const { rows } = await pool.query<{ workflow_id: string; operation_id: string }>(
      'SELECT workflow_id, operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
      [tenantId, key],
    );
    const ledger = rows.length
      ? Number((await pool.query('SELECT count(*) FROM usage_ledger WHERE operation_id = ANY($1::uuid[])', [rows.map((r) => r.operation_id)])).rows[0].count)
      : 0;
    let runs = 0;
    if (rows[0]) {
      // Visibility is written asynchronously: wait until the run shows up, then count.
      for (let i = 0; i < 100 && runs === 0; i++) {
        runs = (await temporal.workflow.count(`WorkflowId = '${rows[0].workflow_id}'`)).count;
        if (runs === 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { rows: rows.length, runs, ledger };
  }

  it('returns the first run’s result when the connection is reset after the server accepted', async () => {
    const proxy = await startHttpFaultProxy({ upstreamPort: apiPort(), plan: ['reset-after-accept'] });
    cleanups.push(() => proxy.close());
    const client = new OnceflowClient({ baseUrl: proxy.url, apiKey: tenant.apiKey, retry: { baseDelayMs: 50 } });

    const response = await client.operations.generateContent({ prompt: 'Say hello once' }, { wait: 20 });

    // the reset really happened, and the retry carried the same key
    expect(proxy.log.map((r) => [r.fault, r.method, r.path, r.idempotencyKey])).toEqual([
      ['reset-after-accept', 'POST', '/v1/operations/generate-content', response.idempotencyKey],
      ['pass', 'POST', '/v1/operations/generate-content', response.idempotencyKey],
    ]);
    expect(response.attempts).toBe(2);
    // The answer of the second attempt is a replay of the first request's run.
    expect(response.replayed).toBe(true);
    expect(response.firstSeenAt).toBeInstanceOf(Date);
    expect(response.operation).toMatchObject({ status: 'succeeded', idempotencyKey: response.idempotencyKey });
    expect(typeof response.operation.result?.text).toBe('string');
    expect(await footprint(response.idempotencyKey)).toEqual({ rows: 1, runs: 1, ledger: 1 });
  });

  it('makes one operation per call when every other request (each call’s first attempt) is reset after acceptance', async () => {
    // Per request, not per connection: the client keeps its connection alive,
    // and a per-connection plan let later calls ride one healthy socket.
    const plan = ['reset-after-accept', 'pass', 'reset-after-accept', 'pass', 'reset-after-accept', 'pass'] as const;
    const proxy = await startHttpFaultProxy({ upstreamPort: apiPort(), plan: [...plan] });
    cleanups.push(() => proxy.close());
    const client = new OnceflowClient({ baseUrl: proxy.url, apiKey: tenant.apiKey, retry: { baseDelayMs: 50 } });

    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await client.operations.generateContent({ prompt: `call ${i}` }, { wait: 20 });
      expect(response.operation.status).toBe('succeeded');
      expect(response.attempts).toBe(2);
      expect(response.replayed).toBe(true);
      keys.push(response.idempotencyKey);
    }
    expect(new Set(keys).size).toBe(3);
    // every planned reset was injected, each on the first attempt of a call, and the retry reused its key
    expect(proxy.log.map((r) => r.fault)).toEqual([...plan]);
    expect(proxy.log.map((r) => r.idempotencyKey)).toEqual([keys[0], keys[0], keys[1], keys[1], keys[2], keys[2]]);
    for (const key of keys) expect(await footprint(key)).toEqual({ rows: 1, runs: 1, ledger: 1 });
  });

  it('rides out a PostgreSQL outage behind the facade: 503 with Retry-After, then one operation', async () => {
    // The facade's pool reaches PostgreSQL through a proxy that is down at first.
    const pgPort = Number(new URL(testInfra().databaseUrl).port);
    const pgProxy = await startFaultProxy({ upstreamPort: pgPort, port: await findFreePort(), listening: false });
    cleanups.push(() => pgProxy.close());
    const url = new URL(testInfra().databaseUrl);
    url.port = String(pgProxy.port);
    const outagePool = createPool({ connectionString: url.toString(), max: 3 });
    cleanups.push(() => outagePool.end());
    const outageApi = await startTestApi({ pool: outagePool, temporal, taskQueue: worker.taskQueue });
    cleanups.push(() => outageApi.close());

    const waits: number[] = [];
    const client = new OnceflowClient({
      baseUrl: outageApi.baseUrl,
      apiKey: tenant.apiKey,
      retry: { baseDelayMs: 10 },
      // PostgreSQL comes back while the client waits out the first 503.
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length === 1) await pgProxy.listen();
      },
    });

    const response = await client.operations.generateContent({ prompt: 'through an outage' }, { wait: 20 });

    expect(response.attempts).toBe(2);
    expect(waits[0]).toBeGreaterThanOrEqual(2_000); // the facade's Retry-After for 503
    expect(response.operation.status).toBe('succeeded');
    expect(await footprint(response.idempotencyKey)).toEqual({ rows: 1, runs: 1, ledger: 1 });
  });

  it('retries 409 in-progress through a slow completion and gets the first run’s result', async () => {
    // No worker polls this queue yet: the operation stays running until one starts.
    const taskQueue = uniqueTaskQueue('slow');
    const slowApi = await startTestApi({ pool, temporal, taskQueue });
    cleanups.push(() => slowApi.close());
    let lateWorker: TestWorker | undefined;
    cleanups.push(async () => lateWorker?.stop());
    const waits: number[] = [];
    const client = new OnceflowClient({
      baseUrl: slowApi.baseUrl,
      apiKey: tenant.apiKey,
      retry: { maxAttempts: 30, deadlineMs: 110_000 },
      sleep: async (ms) => {
        waits.push(ms);
        // The worker only arrives after the client has been told 409 at least once.
        if (!lateWorker) lateWorker = await startTestWorker({ pool, taskQueue });
        await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 500)));
      },
    });
    const key = randomUUID();

    const first = await client.operations.generateContent({ prompt: 'take your time' }, { idempotencyKey: key });
    expect(first.status).toBe(202);
    expect(first.operation.status).toBe('running');

    const repeat = await client.operations.generateContent({ prompt: 'take your time' }, { idempotencyKey: key, wait: 2 });

    expect(repeat.attempts).toBeGreaterThanOrEqual(2);
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(repeat.status).toBe(200);
    expect(repeat.replayed).toBe(true);
    expect(repeat.operation.workflowId).toBe(first.operation.workflowId);
    const { rows } = await pool.query('SELECT first_seen_ms FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
    expect(repeat.firstSeenAt?.getTime()).toBe(Number(rows[0].first_seen_ms));
    expect(await footprint(key)).toEqual({ rows: 1, runs: 1, ledger: 1 });
  });

  it('does not retry a reused key with a different payload (422) and leaves the first operation alone', async () => {
    const client = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: tenant.apiKey });
    const first = await client.operations.generateContent({ prompt: 'original' }, { wait: 20 });
    const error = await client.operations.generateContent({ prompt: 'different' }, { idempotencyKey: first.idempotencyKey }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'OnceflowProblemError', status: 422, problem: 'idempotency-key-reused', attempts: 1, idempotencyKey: first.idempotencyKey });
    expect(await footprint(first.idempotencyKey)).toEqual({ rows: 1, runs: 1, ledger: 1 });
    const read = await client.get('generate-content', first.idempotencyKey);
    expect(read.result).toEqual(first.operation.result);
  });

  it('answers 401 for a wrong key and 404 for another tenant’s operation, without retrying', async () => {
    const other = await createApiTenant(pool, 'client-other');
    const mine = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: tenant.apiKey });
    const theirs = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: other.apiKey });
    const bogus = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: 'not-a-key' });
    const created = await mine.operations.generateContent({ prompt: 'private' });
    await expect(theirs.get('generate-content', created.idempotencyKey)).rejects.toMatchObject({ status: 404, attempts: 1 });
    await expect(bogus.get('generate-content', created.idempotencyKey)).rejects.toMatchObject({ status: 401, attempts: 1 });
  });
});
