import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { ensureOutboxPruneSchedule } from '../../src/outbox/prune-schedule';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestTenant, exclusively, OUTBOX_PRUNE_LOCK } from '../helpers/db';
import { type TestWorker } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';

const OLD = '2020-01-01T00:00:00Z';

describe('pruning the outbox and the inbox', () => {
  let pool: Pool;
  let temporal: Client;
  let worker: TestWorker;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, worker, close } = await startTestStack({ worker: {} }));
  });
  afterAll(() => close());

  /** An event written at `createdAt`, with one delivery per given status to a fresh subscription. */
  async function event(tenantId: string, createdAt: string, deliveryStatuses: ('pending' | 'delivered' | 'dead')[]): Promise<string> {
    const eventId = `prune-${randomUUID()}`;
    const { rows } = await pool.query<{ seq: number }>(
      `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload, created_at)
       VALUES ($1, $2, $1, 'operation.succeeded', '{}', $3) RETURNING seq`,
      [eventId, tenantId, createdAt],
    );
    for (const status of deliveryStatuses) {
      const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/x', eventTypes: ['*'] });
      await pool.query(
        `INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq, status, created_at) VALUES ($1, $2, $1, $3, $4, $5)`,
        [eventId, subscription.id, rows[0]!.seq, status, createdAt],
      );
    }
    return eventId;
  }

  const exists = async (eventId: string) => (await pool.query('SELECT 1 FROM outbox_events WHERE event_id = $1', [eventId])).rowCount === 1;
  const inInbox = async (eventId: string) => (await pool.query('SELECT 1 FROM inbox WHERE event_id = $1', [eventId])).rowCount === 1;

  it('removes acknowledged events, dead letters with their payloads, and inbox rows past the retention, and keeps pending deliveries and young rows', () => exclusively(pool, OUTBOX_PRUNE_LOCK, async () => {
    const tenantId = await createTestTenant(pool);
    const oldDelivered = await event(tenantId, OLD, ['delivered', 'delivered']);
    const oldUnsubscribed = await event(tenantId, OLD, []);
    const oldPartlyPending = await event(tenantId, OLD, ['delivered', 'pending']);
    const oldDead = await event(tenantId, OLD, ['dead']);
    const youngDead = await event(tenantId, new Date().toISOString(), ['dead']);
    const youngDelivered = await event(tenantId, new Date().toISOString(), ['delivered']);
    const oldInbox = `prune-inbox-${randomUUID()}`;
    const youngInbox = `prune-inbox-${randomUUID()}`;
    await pool.query(`INSERT INTO inbox (consumer, event_id, received_at) VALUES ('prune-test', $1, $2), ('prune-test', $3, now())`, [oldInbox, OLD, youngInbox]);

    const report = await temporal.workflow.execute('pruneOutboxWorkflow', {
      taskQueue: worker.taskQueue,
      workflowId: `prune-test-${randomUUID()}`,
      args: [{ retentionDays: 7, batchSize: 1 }],
    });

    expect(await exists(oldDelivered)).toBe(false);
    expect(await exists(oldUnsubscribed)).toBe(false);
    expect(await exists(oldPartlyPending)).toBe(true);
    expect(await exists(oldDead)).toBe(false);
    expect((await pool.query('SELECT 1 FROM deliveries WHERE event_id = $1', [oldDead])).rowCount).toBe(0);
    expect(await exists(youngDead)).toBe(true);
    expect(await exists(youngDelivered)).toBe(true);
    expect(await inInbox(oldInbox)).toBe(false);
    expect(await inInbox(youngInbox)).toBe(true);
    expect(report).toEqual({ deadLetters: expect.any(Number), events: expect.any(Number), inbox: expect.any(Number), pausedDropped: expect.any(Number) });
    expect((report as { events: number }).events).toBeGreaterThanOrEqual(3);
    expect((report as { deadLetters: number }).deadLetters).toBeGreaterThanOrEqual(1);
    // The deliveries of a pruned event went with it.
    expect((await pool.query('SELECT 1 FROM deliveries WHERE event_id = $1', [oldDelivered])).rowCount).toBe(0);
  }));

  it('creates its Temporal Schedule once however often a worker starts, and the schedule runs the prune workflow', async () => {
    const scheduleId = `prune-schedule-${randomUUID()}`;
    const options = { taskQueue: worker.taskQueue, scheduleId, every: '1 hour' as const };
    expect(await ensureOutboxPruneSchedule(temporal, options)).toBe('created');
    expect(await ensureOutboxPruneSchedule(temporal, options)).toBe('exists');
    const handle = temporal.schedule.getHandle(scheduleId);
    try {
      // The triggered pass prunes every suite's old rows: not while another suite counts its own pass.
      await exclusively(pool, OUTBOX_PRUNE_LOCK, async () => {
        await handle.trigger();
        let runs: { workflowId: string }[] = [];
        for (let i = 0; i < 200 && runs.length === 0; i++) {
          runs = (await handle.describe()).info.recentActions.map((action) => ({ workflowId: action.action.workflow.workflowId }));
          if (runs.length === 0) await new Promise((r) => setTimeout(r, 100));
        }
        expect(runs).toHaveLength(1);
        const result = await temporal.workflow.getHandle(runs[0]!.workflowId).result();
        expect(result).toEqual({ deadLetters: expect.any(Number), events: expect.any(Number), inbox: expect.any(Number), pausedDropped: expect.any(Number) });
      });
    } finally {
      await handle.delete();
    }
  });
});
