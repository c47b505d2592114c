import { createHash, randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

/**
 * Contract v1.1 over real HTTP, real Temporal and real PostgreSQL: expiry on
 * every answer, the 422 that names the fields, the 409 that shows progress,
 * derived keys and the listing. No worker polls the task queue, so operations
 * stay running for as long as a test needs.
 */
describe('contract v1.1: answers that explain themselves', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  const HOUR_MS = 3_600_000;

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    api = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('v11-idle') });
    tenant = await createApiTenant(pool, 'v11');
  });
  afterAll(async () => {
    await api.close();
    await temporal.connection.close();
    await pool.end();
  });

  const get = async (path: string, apiKey = tenant.apiKey) => {
    const response = await fetch(`${api.baseUrl}${path}`, { headers: { authorization: `Bearer ${apiKey}` } });
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  };

  it('carries the key expiry (header in epoch ms, body in RFC 3339) on 202, 409, 422 and GET, 24 h after the first request', async () => {
    const key = randomUUID();
    const first = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(first.status).toBe(202);
    const stored = await pool.query<{ first_seen_ms: string; expires_ms: string }>(
      `SELECT first_seen_ms, (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint AS expires_ms FROM operations WHERE tenant_id = $1 AND idempotency_key = $2`,
      [tenant.tenantId, key],
    );
    const expiresMs = Number(stored.rows[0]!.expires_ms);
    expect(expiresMs - Number(stored.rows[0]!.first_seen_ms)).toBe(24 * HOUR_MS);
    expect(first.headers.get('idempotency-expires')).toBe(String(expiresMs));
    expect(first.json!.expiresAt).toBe(new Date(expiresMs).toISOString());

    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(repeat.status).toBe(409);
    expect(repeat.headers.get('idempotency-expires')).toBe(String(expiresMs));
    expect(repeat.json!.expiresAt).toBe(new Date(expiresMs).toISOString());

    const reused = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'Something else' } });
    expect(reused.status).toBe(422);
    expect(reused.headers.get('idempotency-expires')).toBe(String(expiresMs));
    expect(reused.json!.expiresAt).toBe(new Date(expiresMs).toISOString());

    const read = await get(`/v1/operations/generate-content/${key}`);
    expect(read.status).toBe(200);
    expect(read.headers.get('idempotency-expires')).toBe(String(expiresMs));
    expect(read.json!.expiresAt).toBe(new Date(expiresMs).toISOString());
  });

  it('names the essential fields that differ in a 422 (added, removed, changed), never their values, and the fingerprint version', async () => {
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'secret prompt one', temperature: 0.5, metadata: { traceId: 'a' } } });
    const reused = await postOperation(api.baseUrl, {
      apiKey: tenant.apiKey,
      key,
      body: { prompt: 'secret prompt two', maxOutputTokens: 100, metadata: { traceId: 'b' } },
    });
    expect(reused.status).toBe(422);
    expect(reused.json).toMatchObject({ type: 'https://onceflow.dev/problems/idempotency-key-reused', fingerprintVersion: 1 });
    // metadata is non-essential: it differs too, yet is not named.
    expect([...reused.json!.differences].sort()).toEqual(['/maxOutputTokens', '/prompt', '/temperature']);
    expect(reused.text).not.toContain('secret prompt');
  });

  it('compares a repeat with the fingerprint version stored with its key', async () => {
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    // A key reserved by a (future) version this process does not know: it must
    // not be compared with the current algorithm and answered with a false 422.
    await pool.query('UPDATE operations SET fingerprint_version = 99 WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(repeat.status).not.toBe(422);
    expect(repeat.status).toBe(500);
  });

  it('shows progress on the 409 and on GET of a running operation, with Retry-After derived from it', async () => {
    const key = randomUUID();
    const first = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(repeat.status).toBe(409);
    expect(repeat.json!.progress).toEqual({
      step: 'calling-gemini', model: null, attempt: 1, attempts: 0, startedAt: first.json!.createdAt, interaction: null,
    });
    expect(repeat.headers.get('retry-after')).toBe('2');

    // Three rate-limited calls recorded, as the Gemini activity records them: the fourth waits its backoff.
    const { rows } = await pool.query<{ operation_id: string; workflow_id: string }>(
      'SELECT operation_id, workflow_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
      [tenant.tenantId, key],
    );
    for (const attempt of [1, 2, 3]) {
      await pool.query(
        `INSERT INTO gemini_attempts (operation_id, model, attempt, workflow_id, outcome, duration_ms, created_at)
         VALUES ($1, 'gemini-2.5-flash', $2::int, $3, 'rate_limited', 40, now() + $2::int * interval '1 millisecond')`,
        [rows[0]!.operation_id, attempt, rows[0]!.workflow_id],
      );
    }
    const later = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(later.status).toBe(409);
    expect(later.json!.progress).toMatchObject({ step: 'backing-off', model: 'gemini-2.5-flash', attempt: 4, attempts: 3 });
    expect(later.headers.get('retry-after')).toBe('8');

    const read = await get(`/v1/operations/generate-content/${key}`);
    expect(read.json!.progress).toEqual(later.json!.progress);
    expect(read.headers.get('retry-after')).toBe('8');
  });

  it('shows a background interaction’s state in the progress of a running generate-report, and polls it slowly', async () => {
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report' });
    const { rows } = await pool.query<{ operation_id: string; workflow_id: string }>(
      'SELECT operation_id, workflow_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
      [tenant.tenantId, key],
    );
    // As the submission ledger holds it once Gemini accepted the interaction.
    await pool.query(
      `INSERT INTO gemini_interactions (operation_id, step, workflow_id, model, interaction_id, status, submit_attempts, submitted_at)
       VALUES ($1, 'submit', $2, 'gemini-2.5-pro', $3, 'submitted', 1, now())`,
      [rows[0]!.operation_id, rows[0]!.workflow_id, `interaction-${randomUUID()}`],
    );
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report' });
    expect(repeat.status).toBe(409);
    expect(repeat.json!.progress).toMatchObject({ step: 'waiting-for-interaction', interaction: { state: 'submitted' } });
    expect(repeat.headers.get('retry-after')).toBe('10');
  });

  it('clamps Retry-After to 60 s however long the backoff', async () => {
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    const { rows } = await pool.query<{ operation_id: string; workflow_id: string }>(
      'SELECT operation_id, workflow_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
      [tenant.tenantId, key],
    );
    await pool.query(
      `INSERT INTO gemini_attempts (operation_id, model, attempt, workflow_id, outcome, duration_ms) VALUES ($1, 'gemini-2.5-pro', 12, $2, 'unavailable', 40)`,
      [rows[0]!.operation_id, rows[0]!.workflow_id],
    );
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(repeat.headers.get('retry-after')).toBe('60');
  });

  describe('failures on the wire: the problem table decides, stored rows from before keep their answer', () => {
    /** A finished failed operation under `key`, written as a run would have left it. */
    async function failedRow(key: string, error: Record<string, unknown>, errorStatus: number | null) {
      await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
      await pool.query(
        `UPDATE operations SET status = 'failed', error = $3, error_status = $4, completed_at = now()
          WHERE tenant_id = $1 AND idempotency_key = $2`,
        [tenant.tenantId, key, JSON.stringify(error), errorStatus],
      );
    }

    it('answers a slug-only failure (no status, no title) with the table’s status and title', async () => {
      const key = randomUUID();
      await failedRow(key, { type: 'prompt-blocked', detail: 'blocked for safety', retryable: false, attempts: [] }, null);
      const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
      expect(repeat.status).toBe(422);
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');
      expect(repeat.json).toMatchObject({
        type: 'https://onceflow.dev/problems/prompt-blocked', title: 'Prompt blocked by Gemini safety filters', status: 422, detail: 'blocked for safety',
      });
      const budget = randomUUID();
      await failedRow(budget, { type: 'budget-exceeded', detail: 'over the monthly cap', retryable: false }, null);
      expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: budget })).status).toBe(402);
    });

    it('answers a row stored before the table with its own stored status and title when the table does not know its slug', async () => {
      const key = randomUUID();
      await failedRow(key, { type: 'legacy-failure', title: 'An old title', status: 503, detail: 'old', retryable: false }, 503);
      const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
      expect(repeat.status).toBe(503);
      expect(repeat.json).toMatchObject({ type: 'https://onceflow.dev/problems/legacy-failure', title: 'An old title', status: 503 });
    });
  });

  describe('derived keys (draft-content declares publication and title as key fields)', () => {
    const body = { title: 'Ten ways to test idempotency', publication: 'Weekly', prompt: 'Draft the article' };
    // Written out by hand: RFC 8785 JSON of the key fields, members sorted.
    const expectedKey = `derived:${createHash('sha256').update('{"publication":"Weekly","title":"Ten ways to test idempotency"}').digest('hex')}`;

    it('derives the key from the key fields when Idempotency-Key is absent, returns it, and attaches repeats to it', async () => {
      const owner = await createApiTenant(pool, 'derive');
      const first = await postOperation(api.baseUrl, { apiKey: owner.apiKey, type: 'draft-content', body });
      expect(first.status).toBe(202);
      expect(first.headers.get('idempotency-key')).toBe(expectedKey);
      expect(first.json!.idempotencyKey).toBe(expectedKey);

      // The same title with other non-key fields is the same draft: a conflict, not a second draft.
      const other = await postOperation(api.baseUrl, { apiKey: owner.apiKey, type: 'draft-content', body: { ...body, prompt: 'Draft it differently' } });
      expect(other.status).toBe(422);
      expect(other.headers.get('idempotency-key')).toBe(expectedKey);
      expect(other.json!.differences).toEqual(['/prompt']);

      const repeat = await postOperation(api.baseUrl, { apiKey: owner.apiKey, type: 'draft-content', body: { ...body, metadata: { run: 2 } } });
      expect(repeat.status).toBe(409);
      // Echoing the returned key as the header is the same request.
      const echoed = await postOperation(api.baseUrl, { apiKey: owner.apiKey, type: 'draft-content', key: expectedKey, body });
      expect(echoed.status).toBe(409);

      const read = await get(`/v1/operations/draft-content/${encodeURIComponent(expectedKey)}`, owner.apiKey);
      expect(read.status).toBe(200);
      expect(read.json!.idempotencyKey).toBe(expectedKey);
      const rows = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [owner.tenantId]);
      expect(rows.rows[0].n).toBe(1);
    });

    it('refuses a caller key with the derived prefix that is not the key its body derives', async () => {
      const forged = `derived:${'0'.repeat(64)}`;
      const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, type: 'draft-content', key: forged, body });
      expect(response.status).toBe(400);
      expect(response.json!.type).toBe('https://onceflow.dev/problems/idempotency-key-invalid');
      const rows = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, forged]);
      expect(rows.rows[0].n).toBe(0);
    });

    it('keeps answering 400 idempotency-key-missing for a type without key fields', async () => {
      const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, body: { prompt: 'hi' } });
      expect(response.status).toBe(400);
      expect(response.json!.type).toBe('https://onceflow.dev/problems/idempotency-key-missing');
    });
  });

  describe('GET /v1/operations', () => {
    it('lists the caller’s operations newest first, in cursor pages, filtered by type, status and creation time', async () => {
      const owner = await createApiTenant(pool, 'list');
      const other = await createApiTenant(pool, 'list-other');
      const keys: string[] = [];
      for (let i = 0; i < 3; i++) {
        const key = `list-${i}-${randomUUID()}`;
        keys.push(key);
        expect((await postOperation(api.baseUrl, { apiKey: owner.apiKey, key })).status).toBe(202);
      }
      const report = `report-${randomUUID()}`;
      expect((await postOperation(api.baseUrl, { apiKey: owner.apiKey, key: report, type: 'generate-report' })).status).toBe(202);
      await postOperation(api.baseUrl, { apiKey: other.apiKey, key: keys[0] });

      const page1 = await get('/v1/operations?limit=2', owner.apiKey);
      expect(page1.status).toBe(200);
      expect(page1.json!.data.map((o: any) => o.idempotencyKey)).toEqual([report, keys[2]]);
      expect(page1.json!.nextCursor).toEqual(expect.any(String));
      const page2 = await get(`/v1/operations?limit=2&cursor=${page1.json!.nextCursor}`, owner.apiKey);
      expect(page2.json!.data.map((o: any) => o.idempotencyKey)).toEqual([keys[1], keys[0]]);
      expect(page2.json!.nextCursor).toBeNull();

      const contentOnly = await get('/v1/operations?type=generate-content', owner.apiKey);
      expect(contentOnly.json!.data.map((o: any) => o.idempotencyKey)).toEqual([keys[2], keys[1], keys[0]]);
      expect((await get('/v1/operations?status=succeeded', owner.apiKey)).json!.data).toEqual([]);
      expect((await get('/v1/operations?status=running', owner.apiKey)).json!.data).toHaveLength(4);

      const second = page2.json!.data[0];
      const after = await get(`/v1/operations?createdAfter=${encodeURIComponent(second.createdAt)}&type=generate-content`, owner.apiKey);
      expect(after.json!.data.map((o: any) => o.idempotencyKey)).toEqual([keys[2]]);
      const before = await get(`/v1/operations?createdBefore=${encodeURIComponent(second.createdAt)}`, owner.apiKey);
      expect(before.json!.data.map((o: any) => o.idempotencyKey)).toEqual([keys[0]]);

      // Another tenant sees only its own operation.
      const theirs = await get('/v1/operations', other.apiKey);
      expect(theirs.json!.data.map((o: any) => o.idempotencyKey)).toEqual([keys[0]]);
    });

    it('answers 400 to a page size over 100, a foreign cursor or an unknown filter', async () => {
      expect((await get('/v1/operations?limit=101')).status).toBe(400);
      const bad = await get('/v1/operations?cursor=bm90LWEtY3Vyc29y');
      expect(bad.status).toBe(400);
      expect(bad.json!.type).toBe('https://onceflow.dev/problems/invalid-request');
      expect((await get('/v1/operations?status=exploded')).status).toBe(400);
    });

    it('documents the listing, derived keys, expiry and progress in the OpenAPI document', async () => {
      const doc = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as any;
      const list = doc.paths['/v1/operations'].get;
      expect(list.parameters.map((p: any) => p.name).sort()).toEqual(['createdAfter', 'createdBefore', 'cursor', 'limit', 'status', 'type']);
      const resource = doc.paths['/v1/operations/generate-content/{key}'].get.responses['200'].content['application/json'].schema;
      expect(Object.keys(resource.properties)).toEqual(expect.arrayContaining(['expiresAt', 'progress']));
      const draftKey = doc.paths['/v1/operations/draft-content'].post.parameters.find((p: any) => p.name === 'idempotency-key');
      expect(draftKey.required).toBeFalsy();
      expect(draftKey.description).toContain('derived');
      const post = doc.paths['/v1/operations/generate-content'].post.responses;
      expect(Object.keys(post['409'].content['application/problem+json'].schema.properties)).toEqual(expect.arrayContaining(['progress', 'expiresAt']));
      expect(Object.keys(post['422'].content['application/problem+json'].schema.properties)).toEqual(expect.arrayContaining(['differences', 'fingerprintVersion']));
    });
  });
});
