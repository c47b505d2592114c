import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, type TestApi } from '../helpers/api';
import { exclusively, OUTBOX_PRUNE_LOCK } from '../helpers/db';
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

  it('leaves nothing of a run whose key expired and was reserved again: its answer, attempt rows and outbox events go after their grace and retention', async () => {
    const tenant = await createApiTenant(pool, 'superseded');
    const key = randomUUID();
    const first = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'the first run' }, headers: { prefer: 'wait=60' } });
    expect(first.status).toBe(200);
    const oldId = (await pool.query<{ operation_id: string }>('SELECT operation_id FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0]!.operation_id;
    const recordsOf = async (operationId: string) => ({
      effects: (await effectsOf(operationId)).length,
      attempts: (await pool.query('SELECT 1 FROM gemini_attempts WHERE operation_id = $1', [operationId])).rowCount,
      events: (await pool.query('SELECT 1 FROM outbox_events WHERE aggregate_id = $1', [operationId])).rowCount,
    });
    const before = await recordsOf(oldId);
    expect(before.effects).toBeGreaterThan(0);
    expect(before.attempts).toBeGreaterThan(0);
    expect(before.events).toBeGreaterThan(0);

    // The key's retention passes and the same key comes back: a new operation on the same row.
    await pool.query("UPDATE operations SET expires_at = now() - interval '1 second' WHERE operation_id = $1", [oldId]);
    const second = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'the second run' }, headers: { prefer: 'wait=60' } });
    expect(second.status).toBe(200);
    const newId = (await pool.query<{ operation_id: string }>('SELECT operation_id FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0]!.operation_id;
    expect(newId).not.toBe(oldId);
    expect((await pool.query('SELECT 1 FROM retired_operations WHERE operation_id = $1', [oldId])).rowCount).toBe(1);

    // Within the grace an activity of the old run may still be writing: a pass keeps its records.
    await temporal.workflow.execute('maintenanceWorkflow', { taskQueue: worker.taskQueue, workflowId: `maintenance-${randomUUID()}`, args: [] });
    expect((await recordsOf(oldId)).effects).toBe(before.effects);

    // The grace and the outbox retention pass (moved in the database, not in the code under test).
    await pool.query("UPDATE retired_operations SET retired_at = now() - interval '2 hours' WHERE operation_id = $1", [oldId]);
    await pool.query("UPDATE outbox_events SET created_at = now() - interval '8 days' WHERE aggregate_id = $1", [oldId]);
    await temporal.workflow.execute('maintenanceWorkflow', { taskQueue: worker.taskQueue, workflowId: `maintenance-${randomUUID()}`, args: [] });
    await exclusively(pool, OUTBOX_PRUNE_LOCK, () => temporal.workflow.execute('pruneOutboxWorkflow', { taskQueue: worker.taskQueue, workflowId: `prune-${randomUUID()}`, args: [{}] }));

    expect(await recordsOf(oldId)).toEqual({ effects: 0, attempts: 0, events: 0 });
    expect((await pool.query('SELECT 1 FROM retired_operations WHERE operation_id = $1', [oldId])).rowCount).toBe(0);
    // The new run keeps everything.
    const kept = await recordsOf(newId);
    expect(kept.effects).toBeGreaterThan(0);
    expect(kept.attempts).toBeGreaterThan(0);
    expect(JSON.stringify(await effectsOf(newId))).toContain(second.json!.result.text);
  });
});
