import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createPruneOutbox, type PruneOutboxReport } from '../../activities/prune-outbox';
import { createPurgeExpiredOperations } from '../../activities/purge-expired-operations';
import { ABANDONED_ERROR_TYPE, createReconcileOperations } from '../../activities/reconcile-operations';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { createLogger } from '../../src/observability/logger';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestPool, createTestTenant, exclusively, OUTBOX_PRUNE_LOCK } from '../helpers/db';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

/**
 * The maintenance activities run in a MockActivityEnvironment (no worker, no
 * schedule) on the real PostgreSQL, the reconciler against the real Temporal
 * dev server. Their clocks are literal timestamps years in the past, so a
 * pass sees only the rows this file wrote, never another test's.
 */
describe('maintenance activities', () => {
  let pool: Pool;
  let temporal: Client;
  let tenantId: string;
  const env = () => new MockActivityEnvironment({ attempt: 1 });
  const count = async (sql: string, params: unknown[]) => Number((await pool.query(sql, params)).rows[0].n);

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    tenantId = await createTestTenant(pool, 'maint');
  });
  afterAll(async () => {
    await temporal.connection.close();
    await pool.end();
  });

  /** An operation row written as of 2001 (first_seen, updated), expiring at `expiresAt`. */
  async function operation(status: 'reserved' | 'running' | 'succeeded', expiresAt: string): Promise<{ operationId: string; workflowId: string }> {
    const operationId = randomUUID();
    const workflowId = `maint-${operationId}`;
    await pool.query(
      `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, status, input,
                               first_seen_ms, created_at, updated_at, expires_at)
       VALUES ($1, 'generate-content', $2, $3, 'fp', $4, $5, '{"prompt":"kept short"}', 978307200000, '2001-01-01Z', '2001-01-01Z', $6)`,
      [tenantId, `key-${operationId}`, operationId, workflowId, status, expiresAt],
    );
    return { operationId, workflowId };
  }

  it('pruneOutbox deletes acknowledged events and old inbox rows past the retention, and keeps an event still being delivered', async () => {
    const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/x', eventTypes: ['*'] });
    const event = async (status: 'pending' | 'delivered') => {
      const eventId = `maint-${randomUUID()}`;
      const { rows } = await pool.query<{ seq: number }>(
        `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload, created_at)
         VALUES ($1, $2, $1, 'operation.succeeded', '{}', '2001-01-01Z') RETURNING seq`, [eventId, tenantId]);
      await pool.query(
        `INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq, status, created_at) VALUES ($1, $2, $1, $3, $4, '2001-01-01Z')`,
        [eventId, subscription.id, rows[0]!.seq, status]);
      return eventId;
    };
    const delivered = await event('delivered');
    const pending = await event('pending');
    const inboxEvent = `maint-${randomUUID()}`;
    await pool.query(`INSERT INTO inbox (consumer, event_id, received_at) VALUES ('maintenance-test', $1, '2001-01-01Z')`, [inboxEvent]);

    const report = await exclusively(pool, OUTBOX_PRUNE_LOCK, () => env().run(createPruneOutbox({ pool, outboxRetentionDays: 7 }), { batchSize: 1 })) as PruneOutboxReport;
    expect(report.events).toBeGreaterThanOrEqual(1);
    expect(report.inbox).toBeGreaterThanOrEqual(1);
    expect(await count('SELECT count(*) AS n FROM outbox_events WHERE event_id = $1', [delivered])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM outbox_events WHERE event_id = $1', [pending])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM inbox WHERE event_id = $1', [inboxEvent])).toBe(0);
  });

  it('purgeExpiredOperations deletes finished expired operations with their effects, in batches, and never an unfinished one', async () => {
    const finished = await Promise.all([operation('succeeded', '2001-06-01Z'), operation('succeeded', '2001-06-01Z'), operation('succeeded', '2001-06-01Z')]);
    const unfinished = await operation('running', '2001-06-01Z');
    const live = await operation('succeeded', '2003-01-01Z');
    for (const { operationId, workflowId } of [...finished, live]) {
      await pool.query(`INSERT INTO effects (operation_id, step, workflow_id, result) VALUES ($1, 'gemini:x', $2, '{"text":"an answer"}')`, [operationId, workflowId]);
    }
    const purge = createPurgeExpiredOperations({ pool, clock: () => Date.parse('2002-01-01T00:00:00Z') });
    const ids = (rows: { operationId: string }[]) => rows.map((r) => r.operationId);
    try {
      // The pass's other counts (retired runs' records, spend rows) belong to retention's own tests.
      expect(await env().run(purge, { batchSize: 2, maxBatches: 5 })).toMatchObject({ purged: 3 });
      expect(await count('SELECT count(*) AS n FROM operations WHERE operation_id = ANY($1)', [ids(finished)])).toBe(0);
      expect(await count('SELECT count(*) AS n FROM effects WHERE operation_id = ANY($1)', [ids(finished)])).toBe(0);
      expect(await count('SELECT count(*) AS n FROM operations WHERE operation_id = ANY($1)', [ids([unfinished, live])])).toBe(2);
      expect(await count('SELECT count(*) AS n FROM effects WHERE operation_id = $1', [live.operationId])).toBe(1);
    } finally {
      // Gone before the reconciler's test, whose pass would otherwise find the unfinished one.
      await pool.query('DELETE FROM operations WHERE operation_id = ANY($1)', [ids([...finished, unfinished, live])]);
    }
  });

  it('reconcileOperations starts a reservation that lost its start, and fails and releases a running operation whose run is gone: one operation.failed event', async () => {
    const taskQueue = uniqueTaskQueue('maint-reconcile');
    const lost = await operation('reserved', '2030-01-01Z');
    const abandoned = await operation('running', '2030-01-01Z');
    const reconcile = createReconcileOperations({
      pool, temporal, logger: createLogger({ service: 'maintenance-test', level: 'error' }),
      modelChain: ['gemini-2.5-flash'], clock: () => Date.parse('2002-01-01T00:00:00Z'),
    });
    try {
      const result = await env().run(reconcile, { taskQueue });
      expect(result).toEqual({ started: 1, startFailures: 0, abandoned: 1, stillRunning: 0 });
      const started = await temporal.workflow.getHandle(lost.workflowId).describe();
      expect(started.taskQueue).toBe(taskQueue);
      const row = (await pool.query(`SELECT status, released, error->>'type' AS type FROM operations WHERE operation_id = $1`, [abandoned.operationId])).rows[0];
      expect(row).toEqual({ status: 'failed', released: true, type: ABANDONED_ERROR_TYPE });
      expect((await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [abandoned.operationId])).rows).toEqual([{ event_type: 'operation.failed' }]);

      // A second pass finds nothing more to do: the lost one is running now, the abandoned one finished.
      expect(await env().run(reconcile, { taskQueue })).toEqual({ started: 0, startFailures: 0, abandoned: 0, stillRunning: 0 });
    } finally {
      await temporal.workflow.getHandle(lost.workflowId).terminate('maintenance test done').catch(() => undefined);
    }
  });
});
