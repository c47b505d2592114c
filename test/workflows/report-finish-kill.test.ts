import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { PoolClient } from 'pg';
import type { Pool } from '../../src/db/pool';
import type { OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { postOperation, type TestApi } from '../helpers/api';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { startTestStack, type ApiTenant } from '../helpers/stack';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { eventually, type FakeGeminiControl } from '../fakes/gemini';
import { eventuallyAllSucceeded, expectFinishedOnce } from './fixtures/finished-once';

/**
 * generate-report's finish in the poll that reads the end (finishCompleted,
 * activities/gemini-interactions.ts) under SIGKILL, on a real worker process:
 *
 *   event: the poll's finishing transaction begun, the row and the bill
 *          written, the outbox event blocked on its key (held by the test)
 *   after: committed; the kill lands before the poll's completion may reach Temporal
 *
 * A new worker polls again (the dead one's attempt times out on its
 * heartbeat): each report is billed and published exactly once, and its paid
 * interaction was created once.
 */
describe('generate-report finishing in its poll, killed inside and after the finish', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: ApiTenant;
  let close = async () => {};
  let child: RunningProcess | undefined;
  let replacement: TestWorker | undefined;
  const holders: PoolClient[] = [];
  const taskQueue = uniqueTaskQueue('report-finish-kill');

  beforeAll(async () => {
    ({ pool, temporal, gemini, geminiControl: fake, api, tenant, close } = await startTestStack({ gemini: {}, tenant: 'tenant', api: { taskQueue } }));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    for (const holder of holders) {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    await replacement?.stop();
    await close();
  });

  it('bills and publishes each report once, and creates its interaction once, when the worker dies inside or after the in-poll finish', async () => {
    const points = ['event', 'after'] as const;
    const operations = new Map<(typeof points)[number], { key: string; operationId: string; workflowId: string }>();
    for (const point of points) {
      const key = `${point}-${randomUUID()}`;
      const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body: { prompt: `report kill point ${point}` } });
      expect(created.status).toBe(202);
      const { rows } = await pool.query<{ operation_id: string }>('SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
      operations.set(point, { key, operationId: rows[0]!.operation_id, workflowId: created.json!.workflowId });
    }
    const id = (point: (typeof points)[number]) => operations.get(point)!.operationId;

    // The outbox event is completeOperation's last statement: holding its key stops that finish mid-transaction.
    const holder = await pool.connect();
    holders.push(holder);
    await holder.query('BEGIN');
    await holder.query(
      `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload) VALUES ($1, $2, $3, 'operation.succeeded', '{}')`,
      [`${id('event')}:operation.succeeded`, tenant.tenantId, id('event')],
    );

    child = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url });
    await eventually('the unblocked report to commit its finish', async () =>
      (await pool.query(`SELECT 1 FROM effects WHERE operation_id = $1 AND step = 'complete'`, [id('after')])).rowCount === 1, 120_000);
    // Blocked inside the poll, after the interaction's end was recorded.
    await eventually('the other finish blocked on the test’s lock', async () =>
      Number((await pool.query(
        `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'onceflow-worker' AND wait_event_type = 'Lock'`,
      )).rows[0].count) >= 1, 60_000);
    expect((await pool.query('SELECT status FROM gemini_interactions WHERE operation_id = $1', [id('event')])).rows).toEqual([{ status: 'completed' }]);
    // The finish that waits is the poll's own, not a finishing local activity of the workflow.
    const { raw } = await temporal.workflow.getHandle(operations.get('event')!.workflowId).describe();
    expect(raw.pendingActivities?.map((a) => a.activityType?.name)).toEqual(['pollInteraction']);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');

    // Nothing of the interrupted finish survived the kill.
    expect((await pool.query('SELECT count(*)::int AS n FROM usage_ledger WHERE operation_id = $1', [id('event')])).rows[0].n).toBe(0);
    for (const held of holders.splice(0)) {
      await held.query('ROLLBACK');
      held.release();
    }

    replacement = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    // The dead worker's poll is retried once Temporal times out its heartbeat.
    await eventuallyAllSucceeded(pool, [...operations.values()].map((o) => o.operationId), 'both reports to succeed on the new worker', 150_000);

    await expectFinishedOnce(pool, points.map((point) => ({ point, operationId: id(point) })));
    for (const point of points) {
      const operationId = id(point);
      expect({ point, submissions: (await pool.query('SELECT submit_attempts FROM gemini_interactions WHERE operation_id = $1', [operationId])).rows })
        .toEqual({ point, submissions: [{ submit_attempts: 1 }] });
    }
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create', 'interactions.create']);
  }, 300_000);
});
