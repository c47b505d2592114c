import { randomUUID } from 'node:crypto';
import { OnceflowClient, OnceflowProblemError } from '../../src/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';

/** The client's v1.1 surface against the real facade, Temporal and PostgreSQL: derived keys, expiry, differences, listing. */
describe('OnceflowClient: contract v1.1', () => {
  let pool: Pool;
  let api: TestApi;
  let close = async () => {};

  beforeAll(async () => ({ pool, api, close } = await startTestStack({ worker: {}, api: {} })));
  afterAll(() => close());

  const clientFor = (apiKey: string) => new OnceflowClient({ baseUrl: api.baseUrl, apiKey, retry: { maxAttempts: 1 } });

  it('drafts a title once with a derived key, reports the key and its expiry, and replays the draft to the second caller', async () => {
    const tenant = await createApiTenant(pool, 'sdk-derive');
    const client = clientFor(tenant.apiKey);
    const draft = { title: `Idempotency in practice ${randomUUID()}`, publication: 'Weekly', prompt: 'Draft the article' };
    const first = await client.operations.draftContent(draft, { deriveKey: true, wait: 30 });
    expect(first.status).toBe(200);
    expect(first.idempotencyKey).toMatch(/^derived:[0-9a-f]{64}$/);
    const { rows } = await pool.query<{ expires_ms: string }>(
      'SELECT (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint AS expires_ms FROM operations WHERE tenant_id = $1',
      [tenant.tenantId],
    );
    expect(first.expiresAt?.getTime()).toBe(Number(rows[0]!.expires_ms));

    const second = await client.operations.draftContent(draft, { deriveKey: true });
    expect(second).toMatchObject({ status: 200, replayed: true, idempotencyKey: first.idempotencyKey });
    expect(second.operation.result).toEqual(first.operation.result);
    expect(rows).toHaveLength(1);
  });

  it('surfaces the differences of a reused key on the problem it throws', async () => {
    const tenant = await createApiTenant(pool, 'sdk-diff');
    const client = clientFor(tenant.apiKey);
    const key = randomUUID();
    await client.operations.generateContent({ prompt: 'one' }, { idempotencyKey: key });
    const reused = client.operations.generateContent({ prompt: 'one', temperature: 1 }, { idempotencyKey: key });
    await expect(reused).rejects.toBeInstanceOf(OnceflowProblemError);
    await expect(reused).rejects.toMatchObject({ status: 422, body: { differences: ['/temperature'], fingerprintVersion: 1 } });
  });

  it('lists the caller’s operations page by page, and all of them with listAll', async () => {
    const tenant = await createApiTenant(pool, 'sdk-list');
    const client = clientFor(tenant.apiKey);
    const keys = [randomUUID(), randomUUID(), randomUUID()];
    for (const key of keys) await client.operations.generateContent({ prompt: 'list me' }, { idempotencyKey: key });
    const page = await client.list({ limit: 2, type: 'generate-content' });
    expect(page.data.map((o) => o.idempotencyKey)).toEqual([keys[2], keys[1]]);
    const rest = await client.list({ limit: 2, type: 'generate-content', cursor: page.nextCursor! });
    expect(rest).toMatchObject({ nextCursor: null });
    expect(rest.data.map((o) => o.idempotencyKey)).toEqual([keys[0]]);
    const all: string[] = [];
    for await (const operation of client.listAll({ limit: 1 })) all.push(operation.idempotencyKey);
    expect(all).toEqual([...keys].reverse());
  });
});
