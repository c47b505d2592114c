import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import type { OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { postOperation, type TestApi } from '../helpers/api';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { startTestStack, type ApiTenant } from '../helpers/stack';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { eventually, type FakeGeminiControl } from '../fakes/gemini';

/**
 * A real worker process (`node --import tsx src/worker/main.ts`) is killed
 * with SIGKILL after the paid Gemini response was stored but before the
 * finishing phase committed. The test holds a row lock on the operation so
 * completeOperation is blocked at exactly that point when the kill comes.
 */
describe('a worker killed after the Gemini response was stored', () => {
  let pool: Pool;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: ApiTenant;
  let close = async () => {};
  let child: RunningProcess | undefined;
  let replacement: TestWorker | undefined;
  const taskQueue = uniqueTaskQueue('crash');

  beforeAll(async () => {
    ({ pool, gemini, geminiControl: fake, api, tenant, close } = await startTestStack({ gemini: {}, tenant: 'tenant', api: { taskQueue } }));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await replacement?.stop();
    await close();
  });

  it('is replaced by a new worker that finishes the operation without calling Gemini again: one call, one bill, one event', async () => {
    child = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url });

    // The answer takes a moment, so the test can lock the operation row first.
    await fake.script([{ kind: 'ok', delayMs: 1_500 }], 'gemini-2.5-flash');
    const key = randomUUID();
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'survive a SIGKILL' } });
    expect(created.status).toBe(202);
    const { operation_id: operationId } = (await pool.query<{ operation_id: string }>(
      'SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0]!;
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM operations WHERE operation_id = $1 FOR UPDATE', [operationId]);
      await eventually('the stored Gemini response', async () =>
        (await pool.query(`SELECT 1 FROM effects WHERE operation_id = $1 AND step = 'gemini:gemini-2.5-flash'`, [operationId])).rowCount === 1);
      await eventually('completeOperation blocked on the row lock', async () =>
        (await pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'onceflow-worker' AND wait_event_type = 'Lock' AND query ILIKE '%UPDATE operations%'`,
        )).rowCount! > 0);
      child.kill('SIGKILL');
      expect(await child.exited).toBe('SIGKILL');
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect((await pool.query('SELECT status FROM operations WHERE operation_id = $1', [operationId])).rows[0].status).not.toBe('succeeded');

    replacement = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    // completeOperation is retried once Temporal times out the dead worker's attempt (databaseWrite startToClose).
    await eventually('the operation to succeed on the new worker', async () =>
      (await pool.query('SELECT status FROM operations WHERE operation_id = $1', [operationId])).rows[0].status === 'succeeded', 150_000);

    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect((await pool.query('SELECT total_tokens FROM usage_ledger WHERE operation_id = $1', [operationId])).rows).toHaveLength(1);
    expect((await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows.map((r) => r.event_type)).toEqual(['operation.succeeded']);
    const final = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'survive a SIGKILL' } });
    expect(final.status).toBe(200);
    expect(final.json!.result.text).toContain('[offline model]');
    expect(final.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['succeeded']);
  }, 300_000);
});
