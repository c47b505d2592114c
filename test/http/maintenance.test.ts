import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { createPurgeExpiredOperations } from '../../activities/purge-expired-operations';
import { createReconcileOperations } from '../../activities/reconcile-operations';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { createLogger } from '../../src/observability/logger';
import { ensureMaintenanceSchedule } from '../../src/operations/maintenance-schedule';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { testInfra } from '../helpers/infra';
import { uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';

/**
 * Self-healing and expiry run by Temporal, not by the API process: the
 * reconciler starts reservations whose start was lost and closes runs that
 * ended without an outcome; the purge deletes finished rows past retention.
 */
describe('maintenance: reconcile and purge', () => {
  let pool: Pool;
  let temporal: Client;
  let worker: TestWorker;
  let tenant: { tenantId: string; apiKey: string };
  let idleApi: TestApi;
  const logger = createLogger({ service: 'test-maintenance', level: 'silent' });

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, worker, api: idleApi, close } = await startTestStack({ worker: {}, api: { taskQueue: uniqueTaskQueue('idle') } }));
    tenant = await createApiTenant(pool, 'maint');
  });
  afterAll(() => close());

  const row = async (key: string) =>
    (await pool.query('SELECT operation_id, status, run_id, error, error_status, released FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0];
  const executions = async (key: string) =>
    (await temporal.workflow.count(`OnceflowTenant = '${tenant.tenantId}' AND OnceflowIdempotencyKey = '${key}'`)).count;
  /** Polls a condition that a real worker makes true; bounded, never a timed assertion. */
  async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, attempts = 200): Promise<T> {
    let value = await read();
    for (let i = 0; i < attempts && !done(value); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      value = await read();
    }
    return value;
  }

  it('starts, on the next pass, an operation whose workflow start failed after its key was reserved, exactly once', async () => {
    const key = randomUUID();
    const brokenTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await findFreePort()}` }), namespace: testInfra().temporalNamespace });
    const broken = await startTestApi({ pool, temporal: brokenTemporal, taskQueue: worker.taskQueue });
    try {
      expect((await postOperation(broken.baseUrl, { apiKey: tenant.apiKey, key })).status).toBe(503);
    } finally {
      await broken.close();
    }
    expect((await row(key)).status).toBe('reserved');
    // Nobody asks again. Age the reservation past the reconciler's threshold (as if the pass ran a minute later).
    await pool.query(`UPDATE operations SET updated_at = now() - interval '1 hour' WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key]);

    const reconcile = createReconcileOperations({ pool, logger, temporal, modelChain: ['gemini-2.5-flash', 'gemini-2.5-flash-lite'] });
    const report = await reconcile({ taskQueue: worker.taskQueue });
    expect(report.started).toBeGreaterThanOrEqual(1);
    const finished = await eventually(() => row(key), (r) => r.status === 'succeeded');
    expect(finished.status).toBe('succeeded');
    expect(finished.run_id).not.toBeNull();
    // A second pass (or a racing retry) attaches, never starts a second execution.
    await reconcile({ taskQueue: worker.taskQueue });
    expect(await eventually(() => executions(key), (n) => n > 0)).toBe(1);
  });

  it('fails and releases an operation whose run ended without recording an outcome, publishing one operation.failed event', async () => {
    const key = randomUUID();
    const created = await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key });
    expect(created.status).toBe(202);
    await temporal.workflow.getHandle(created.json!.workflowId).terminate('test: the run dies without finishing its operation');
    await pool.query(`UPDATE operations SET updated_at = now() - interval '1 hour' WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key]);

    const reconcile = createReconcileOperations({ pool, logger, temporal, modelChain: ['gemini-2.5-flash', 'gemini-2.5-flash-lite'] });
    const report = await reconcile({ taskQueue: worker.taskQueue });
    expect(report.abandoned).toBeGreaterThanOrEqual(1);
    const closed = await row(key);
    expect(closed).toMatchObject({ status: 'failed', released: true, error: { type: 'operation-abandoned' } });
    const events = await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [closed.operation_id]);
    expect(events.rows).toEqual([{ event_type: 'operation.failed' }]);

    // The released key starts a new run on the next request.
    const liveApi = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue });
    try {
      const retried = await postOperation(liveApi.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=20' } });
      expect(retried.status).toBe(200);
      expect(retried.json).toMatchObject({ status: 'succeeded' });
      expect(retried.json!.runId).not.toBe(created.json!.runId);
    } finally {
      await liveApi.close();
    }
  });

  it('leaves a run that is still going alone', async () => {
    const key = randomUUID();
    expect((await postOperation(idleApi.baseUrl, { apiKey: tenant.apiKey, key })).status).toBe(202);
    await pool.query(`UPDATE operations SET updated_at = now() - interval '1 hour' WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key]);
    const report = await createReconcileOperations({ pool, logger, temporal, modelChain: ['gemini-2.5-flash', 'gemini-2.5-flash-lite'] })({ taskQueue: worker.taskQueue });
    expect(report.stillRunning).toBeGreaterThanOrEqual(1);
    expect((await row(key)).status).toBe('running');
  });

  it('purges finished rows past their expiry at the injected time, keeping unfinished and unexpired ones', async () => {
    const insert = (key: string, status: string, expiresAt: string) =>
      pool.query(
        `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, status, input, first_seen_ms, created_at, expires_at)
         VALUES ($1, 'generate-content', $2, $3, 'f', 'wf', $4, '{}', 1577750400000, '2019-12-31T00:00:00Z', $5)`,
        [tenant.tenantId, key, randomUUID(), status, expiresAt],
      );
    const prefix = randomUUID();
    await insert(`${prefix}-succeeded-expired`, 'succeeded', '2020-01-01T00:00:00Z');
    await insert(`${prefix}-failed-expired`, 'failed', '2020-01-01T12:00:00Z');
    await insert(`${prefix}-running-expired`, 'running', '2020-01-01T00:00:00Z');
    await insert(`${prefix}-succeeded-live`, 'succeeded', '2020-01-03T00:00:00Z');

    const purge = createPurgeExpiredOperations({ pool, clock: () => Date.parse('2020-01-02T00:00:00Z') });
    // One row per batch: the loop must keep going until a batch comes back short.
    expect(await purge({ batchSize: 1 })).toMatchObject({ purged: 2 });
    const { rows } = await pool.query('SELECT idempotency_key FROM operations WHERE idempotency_key LIKE $1 ORDER BY idempotency_key', [`${prefix}%`]);
    expect(rows.map((r) => r.idempotency_key)).toEqual([`${prefix}-running-expired`, `${prefix}-succeeded-live`]);

    const later = createPurgeExpiredOperations({ pool, clock: () => Date.parse('2020-01-03T00:00:01Z') });
    await later({});
    expect((await row(`${prefix}-succeeded-live`)) ?? null).toBeNull();
  });

  it('runs the maintenance pass from a Temporal Schedule created idempotently', async () => {
    const scheduleId = `test-maintenance-${randomUUID()}`;
    expect(await ensureMaintenanceSchedule(temporal, { taskQueue: worker.taskQueue, scheduleId, every: '1 hour' })).toBe('created');
    expect(await ensureMaintenanceSchedule(temporal, { taskQueue: worker.taskQueue, scheduleId, every: '1 hour' })).toBe('exists');
    const handle = temporal.schedule.getHandle(scheduleId);
    try {
      const key = `expired-${randomUUID()}`;
      await pool.query(
        `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, status, input, first_seen_ms, created_at, expires_at)
         VALUES ($1, 'generate-content', $2, $3, 'f', 'wf', 'succeeded', '{}', 1577750400000, '2019-12-31T00:00:00Z', '2020-01-01T00:00:00Z')`,
        [tenant.tenantId, key, randomUUID()],
      );
      await handle.trigger();
      expect(await eventually(() => row(key), (r) => r === undefined)).toBeUndefined();
      const description = await eventually(() => handle.describe(), (d) => d.info.recentActions.length > 0);
      const pass = description.info.recentActions[0]!.action;
      const result = await temporal.workflow.getHandle(pass.workflow.workflowId, pass.workflow.firstExecutionRunId).result();
      expect(result.purged).toBeGreaterThanOrEqual(1);
    } finally {
      await handle.delete();
    }
  });
});
