import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';
import type { TestWorker } from '../helpers/temporal';

describe('stored Gemini answers do not outlive their operation', () => {
  let pool: Pool;
  let temporal: Client;
  let worker: TestWorker;
  let api: TestApi;
  let close = async () => {};
  beforeAll(async () => ({ pool, temporal, worker, api, close } = await startTestStack({ worker: {}, api: {} })));
  afterAll(() => close());

  const effectsOf = async (operationId: string) =>
    (await pool.query<{ step: string; result: unknown }>('SELECT step, result FROM effects WHERE operation_id = $1', [operationId])).rows;

  it('deletes an operation’s effects, the answer text with them, when the maintenance pass purges it, and keeps a live one’s', async () => {
    const tenant = await createApiTenant(pool, 'retention');
    const [expired, live] = await Promise.all(
      ['will expire', 'still live'].map((prompt) => postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt }, headers: { prefer: 'wait=60' } })),
    );
    expect([expired!.status, live!.status]).toEqual([200, 200]);
    const ids = await pool.query<{ operation_id: string; idempotency_key: string }>('SELECT operation_id, idempotency_key FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    const idOf = (answer: typeof expired) => ids.rows.find((r) => r.idempotency_key === answer!.json!.idempotencyKey)!.operation_id;
    const [expiredId, liveId] = [idOf(expired), idOf(live)];
    const stored = await effectsOf(expiredId);
    expect(JSON.stringify(stored)).toContain(expired!.json!.result.text);
    expect(await effectsOf(liveId)).not.toHaveLength(0);

    // Its retention passes (moved in the database, not in the code under test).
    await pool.query("UPDATE operations SET expires_at = now() - interval '1 second' WHERE operation_id = $1", [expiredId]);
    // The maintenance pass the schedule runs, on the real worker.
    await temporal.workflow.execute('maintenanceWorkflow', { taskQueue: worker.taskQueue, workflowId: `maintenance-${randomUUID()}`, args: [] });

    expect((await pool.query('SELECT 1 FROM operations WHERE operation_id = $1', [expiredId])).rowCount).toBe(0);
    expect(await effectsOf(expiredId)).toEqual([]);
    expect(await effectsOf(liveId)).not.toHaveLength(0);
  });
});
