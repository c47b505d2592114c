import { randomUUID } from 'node:crypto';
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
 * The side-effect guard (src/effects/guard.ts) under SIGKILL at each of its
 * points, on a real worker process. Each operation's finishing phase
 * (completeOperation: result + bill + event under the guard) is stopped at a
 * different point by a lock the test holds, one kill takes them all down, and a
 * new worker finishes every one: each effect exactly once.
 *
 *   claim:  inserting the effect row, the guard's first statement (blocked on its key)
 *   effect: inside the transaction, the effect begun (operation row update blocked)
 *   event:  the row and the bill written, the outbox event blocked on its key
 *   after:  committed; the kill lands before the activity's completion may reach Temporal
 */
describe('the side-effect guard, killed at each point', () => {
  let pool: Pool;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: ApiTenant;
  let close = async () => {};
  let child: RunningProcess | undefined;
  let replacement: TestWorker | undefined;
  const holders: PoolClient[] = [];
  const taskQueue = uniqueTaskQueue('guard-kill');

  beforeAll(async () => {
    ({ pool, gemini, geminiControl: fake, api, tenant, close } = await startTestStack({ gemini: {}, tenant: 'tenant', api: { taskQueue } }));
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

  /** A connection holding a transaction open until the test rolls it back. */
  async function hold(statement: string, params: unknown[]): Promise<PoolClient> {
    const client = await pool.connect();
    holders.push(client);
    await client.query('BEGIN');
    await client.query(statement, params);
    return client;
  }

  it('applies every effect exactly once after the worker dies anywhere inside the guard', async () => {
    const points = ['claim', 'effect', 'event', 'after'] as const;
    const operations = new Map<(typeof points)[number], { key: string; operationId: string }>();
    for (const point of points) {
      const key = `${point}-${randomUUID()}`;
      expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: `kill point ${point}` } })).status).toBe(202);
      const { rows } = await pool.query<{ operation_id: string }>('SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
      operations.set(point, { key, operationId: rows[0]!.operation_id });
    }
    const id = (point: (typeof points)[number]) => operations.get(point)!.operationId;

    // Stop each finishing phase at its point before any worker runs.
    await hold(`INSERT INTO effects (operation_id, step, workflow_id, result) VALUES ($1, 'complete', 'held-by-test', 'null')`, [id('claim')]);
    await hold('SELECT 1 FROM operations WHERE operation_id = $1 FOR UPDATE', [id('effect')]);
    await hold(
      `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload) VALUES ($1, $2, $3, 'operation.succeeded', '{}')`,
      [`${id('event')}:operation.succeeded`, tenant.tenantId, id('event')],
    );

    child = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url });
    await eventually('the unblocked operation to commit its finishing phase', async () =>
      (await pool.query(`SELECT 1 FROM effects WHERE operation_id = $1 AND step = 'complete'`, [id('after')])).rowCount === 1, 120_000);
    await eventually('three finishing phases blocked on the test’s locks', async () =>
      Number((await pool.query(
        `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'onceflow-worker' AND wait_event_type IN ('Lock', 'LWLock')`,
      )).rows[0].count) >= 3, 60_000);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');

    // Nothing of the three interrupted transactions survived the kill.
    for (const point of ['claim', 'effect', 'event'] as const) {
      expect((await pool.query('SELECT count(*)::int AS n FROM usage_ledger WHERE operation_id = $1', [id(point)])).rows[0].n).toBe(0);
      expect((await pool.query('SELECT count(*)::int AS n FROM outbox_events WHERE aggregate_id = $1', [id(point)])).rows[0].n).toBe(0);
    }
    for (const holder of holders.splice(0)) {
      await holder.query('ROLLBACK');
      holder.release();
    }

    replacement = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    // Retried once Temporal times out the dead worker's attempts (databaseWrite startToClose).
    await eventuallyAllSucceeded(pool, [...operations.values()].map((o) => o.operationId), 'every operation to succeed on the new worker', 150_000);

    await expectFinishedOnce(pool, points.map((point) => ({ point, operationId: id(point) })));
    // The paid calls happened before the finishing phase, once per operation, and were never repeated.
    expect(await fake.calls({ paid: true })).toHaveLength(points.length);
  }, 300_000);
});
