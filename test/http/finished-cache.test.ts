/**
 * Repeats of a finished operation are answered from the API process's cache
 * of final rows (src/operations/finished-cache.ts): proven by changing the
 * stored row behind the API's back, which only a read would see.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createTenant } from '../../src/tenants/api-keys';
import { postOperation, startTestApi } from '../helpers/api';
import { uniqueTaskQueue } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';

const result = (text: string) => ({ text, model: 'gemini-2.5-flash', usage: { promptTokens: 1, outputTokens: 1, totalTokens: 2 }, attempts: [] });

describe('repeats of a finished operation', () => {
  let pool: Pool;
  let temporal: Client;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, close } = await startTestStack({}));
  });
  afterAll(() => close());

  it('are answered without a database read until the key expires, still checked against the first body, and read every time with the cache off', async () => {
    const tenant = await createTenant(pool, `cache-${randomUUID().slice(0, 8)}`);
    let skewMs = 0;
    const taskQueue = uniqueTaskQueue('finished-cache'); // no worker: the test finishes the row itself
    const cached = await startTestApi({ pool, temporal, taskQueue, clock: () => Date.now() + skewMs });
    const uncached = await startTestApi({ pool, temporal, taskQueue, config: { ONCEFLOW_FINISHED_CACHE_MB: 0 } });
    try {
      const key = randomUUID();
      const send = (baseUrl: string, body?: unknown) => postOperation(baseUrl, { apiKey: tenant.apiKey, key, ...(body ? { body } : {}) });
      const accepted = await send(cached.baseUrl);
      expect(accepted.status).toBe(202);
      const finish = (text: string) =>
        pool.query(`UPDATE operations SET status = 'succeeded', result = $3, completed_at = now() WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key, result(text)]);
      await finish('first answer');
      const first = await send(cached.baseUrl);
      expect(first.status).toBe(200);
      expect(first.json).toMatchObject({ status: 'succeeded', result: { text: 'first answer' } });

      // Only a read would see this; a finished row never changes this way in service.
      await finish('changed behind the API');
      expect((await send(cached.baseUrl)).json).toMatchObject({ result: { text: 'first answer' } });
      expect((await send(uncached.baseUrl)).json).toMatchObject({ result: { text: 'changed behind the API' } });
      // A different body under the key is still a conflict, from the cached fingerprint.
      expect((await send(cached.baseUrl, { prompt: 'another prompt' })).status).toBe(422);

      // Past the key's expiry (by the API's clock) the cached row binds nothing: the key is reserved anew.
      const { rows } = await pool.query<{ expires_ms: string }>(
        'SELECT (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint AS expires_ms FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
        [tenant.tenantId, key],
      );
      skewMs = Number(rows[0]!.expires_ms) - Date.now() + 1_000;
      await temporal.workflow.getHandle(accepted.json!.workflowId as string).terminate('the test finished the row itself');
      const again = await send(cached.baseUrl);
      expect(again.status).toBe(202);
      expect(again.json!.runId).not.toBe(accepted.json!.runId);
      expect(again.json!.status).toBe('running');
    } finally {
      await cached.close();
      await uncached.close();
    }
  });
});
