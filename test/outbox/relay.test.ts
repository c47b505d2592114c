import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Registry } from 'prom-client';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent, OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import { listDeadLetters, replayDeadLetters } from '../../src/outbox/dead-letters';
import { createRelayMetrics, registerOutboxBacklogGauges } from '../../src/outbox/metrics';
import { type OutboxRelay, type OutboxRelayOptions } from '../../src/outbox/relay';
import { createSubscription } from '../../src/outbox/subscriptions';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { createTestTenant } from '../helpers/db';
import { startProcess } from '../helpers/processes';
import { eventually } from '../fakes/gemini';
import { startTestRelay, TEST_WEBHOOK_ALLOWED_HOSTS } from '../helpers/relay';
import { createOwnDatabase, type OwnDatabase } from './fixtures/own-database';

const secretBox = secretBoxFromConfig({});

// A database of this file's own: relays claim every due delivery in theirs,
// so another file's relay would take (and count) these, and ours theirs.
describe('the outbox relay', () => {
  let db: OwnDatabase;
  let pool: Pool;
  const relays: OutboxRelay[] = [];
  const consumers: ExampleConsumer[] = [];
  const subscriptionIds: string[] = [];
  beforeAll(async () => {
    db = await createOwnDatabase('relay');
    pool = db.pool;
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(consumers.splice(0).map((c) => c.close()));
    // A test may end with a delivery still pending (a retry scheduled after a
    // timeout, say); with its consumer gone, the next test's relay would fail
    // it and count a retry that test did not cause.
    await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'test finished' WHERE subscription_id = ANY($1)", [subscriptionIds.splice(0)]);
  });
  afterAll(() => db.drop());

  /** A tenant, a subscription and the example consumer behind it. */
  async function subscriber(consumerName = `c-${randomUUID().slice(0, 8)}`) {
    const tenantId = await createTestTenant(pool);
    const placeholder = await createSubscription(pool, secretBox, { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    const consumer = await startExampleConsumer({ pool, secret: placeholder.secret, consumer: consumerName });
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, placeholder.id]);
    consumers.push(consumer);
    subscriptionIds.push(placeholder.id);
    return { tenantId, subscriptionId: placeholder.id, consumer };
  }

  async function emit(tenantId: string, count: number, aggregateId = randomUUID()): Promise<string[]> {
    const ids: string[] = [];
    await withTransaction(pool, async (tx) => {
      for (let i = 0; i < count; i++) {
        const eventId = `${aggregateId}:event-${i}`;
        await enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId, n: i } });
        ids.push(eventId);
      }
    });
    return ids;
  }

  function relay(options: Partial<OutboxRelayOptions> = {}): OutboxRelay {
    const instance = startTestRelay({ pool, connectionString: db.url, deliveryTimeoutMs: 1_000, ...options });
    relays.push(instance);
    return instance;
  }

  async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Rejects after `timeoutMs`, so a promise nobody settles fails the test instead of hanging the run. */
  function within<T>(promise: Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
    return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not met in time: ${what}`)), timeoutMs).unref())]);
  }

  it('wakes the relays (NOTIFY) for an event with deliveries, and not for one that no subscription takes', async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (message) => heard.push(message.payload ?? ''));
    try {
      await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
      const { tenantId } = await subscriber();
      const lonely = await createTestTenant(pool);
      const [delivered] = await emit(tenantId, 1);
      const [unsubscribed] = await emit(lonely, 1);
      // A NOTIFY of a later transaction arrives after every earlier one.
      const [marker] = await emit(tenantId, 1);
      await eventually('the last event\'s NOTIFY', async () => heard.includes(marker!));
      expect(heard).toEqual([delivered, marker]);
      expect(heard).not.toContain(unsubscribed);
    } finally {
      await listener.end();
    }
  });

  it('delivers each event with Standard Webhooks headers the consumer verifies, webhook-id = event id', async () => {
    const { tenantId, consumer } = await subscriber();
    const ids = await emit(tenantId, 5);
    relay();
    await until(() => consumer.received.length === 5);
    expect(consumer.received.map((r) => r.webhookId)).toEqual(ids);
    expect(await consumer.effectCount()).toBe(5);
  });

  it('keeps the events of one operation in the order they were written, even when one needs a retry', async () => {
    const { tenantId, consumer } = await subscriber();
    consumer.failNext(500);
    const ids = await emit(tenantId, 4);
    relay();
    await until(() => consumer.received.length === 4);
    expect(consumer.received.map((r) => r.webhookId)).toEqual(ids);
  });

  it('sends the next event of an operation as soon as the one before it is recorded, without waiting for a poll', async () => {
    const { tenantId, consumer } = await subscriber();
    const ids = await emit(tenantId, 4);
    // Only the first event is claimable at first; each later one becomes due
    // when its predecessor is recorded. With a 10-minute poll only the relay's
    // own wake-up after recording can send them within the test's timeout.
    relay({ pollIntervalMs: 600_000 });
    await until(() => consumer.received.length === 4, 20_000);
    expect(consumer.received.map((r) => r.webhookId)).toEqual(ids);
  });

  it('retries a subscriber that answers 500, then delivers', async () => {
    const { tenantId, consumer } = await subscriber();
    consumer.failNext(500, 2);
    const [id] = await emit(tenantId, 1);
    relay();
    await until(() => consumer.received.length === 1);
    // The consumer counts the event before it answers, and the relay records
    // the outcome only after the answer: wait for the record, not the receipt.
    const delivery = async () => (await pool.query('SELECT status, attempts FROM deliveries WHERE event_id = $1', [id])).rows;
    await until(async () => (await delivery())[0]?.status !== 'pending');
    expect(await delivery()).toEqual([{ status: 'delivered', attempts: 3 }]);
  });

  it('retries a subscriber that times out', async () => {
    const { tenantId, consumer } = await subscriber();
    consumer.stallNext();
    await emit(tenantId, 1);
    relay({ deliveryTimeoutMs: 300 });
    await until(() => consumer.received.length === 1);
  });

  it('dead-letters after the configured attempts with the last error, and a replay delivers it with the same webhook-id', async () => {
    const { tenantId, subscriptionId, consumer } = await subscriber();
    consumer.failNext(503, 3);
    const [id] = await emit(tenantId, 1);
    relay({ maxAttempts: 3, deadLetterAfterMs: 0 });
    await until(async () => (await listDeadLetters(pool, { subscriptionId })).data.length === 1);
    const [dead] = (await listDeadLetters(pool, { subscriptionId })).data;
    expect(dead).toMatchObject({ eventId: id, attempts: 3, lastError: 'status 503' });
    expect(await replayDeadLetters(pool, { subscriptionId })).toEqual({ replayed: 1, more: false });
    await until(() => consumer.received.length === 1);
    expect(consumer.received[0]!.webhookId).toBe(id);
  });

  it('disables a subscription whose subscriber answers 410 Gone', async () => {
    const { tenantId, subscriptionId, consumer } = await subscriber();
    consumer.failNext(410);
    await emit(tenantId, 1);
    relay();
    await until(async () => (await pool.query("SELECT 1 FROM subscriptions WHERE subscription_id = $1 AND status = 'disabled'", [subscriptionId])).rowCount === 1);
    await emit(tenantId, 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(consumer.received).toHaveLength(0);
  });

  it('counts deliveries, retries and dead letters, observes latency, and reports the backlog', async () => {
    const registry = new Registry();
    registerOutboxBacklogGauges(registry, pool);
    const metrics = createRelayMetrics(registry);
    const value = async (name: string) => (await registry.getSingleMetric(name)!.get()).values.reduce((sum, v) => sum + v.value, 0);
    const { tenantId, consumer } = await subscriber();
    await emit(tenantId, 3);
    // Nothing delivers yet: the three wait (other tests' deliveries may wait too).
    expect(await value('onceflow_outbox_pending')).toBeGreaterThanOrEqual(3);
    expect(await value('onceflow_outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
    consumer.failNext(500);
    relay({ metrics });
    await until(() => consumer.received.length === 3);
    await until(async () => (await value('onceflow_outbox_delivered_total')) === 3);
    expect(await value('onceflow_outbox_retried_total')).toBe(1);
    const latency = (await metrics.latency.get()).values.find((v) => v.metricName === 'onceflow_outbox_delivery_latency_seconds_count');
    expect(latency?.value).toBe(3);

    const gone = await subscriber();
    gone.consumer.failNext(410);
    await emit(gone.tenantId, 1);
    await until(async () => (await value('onceflow_outbox_dead_lettered_total')) === 1);
  });

  it('redelivers with the same webhook-id when the relay is SIGKILLed after the subscriber received the event, and the inbox applies it once', async () => {
    const { tenantId, consumer } = await subscriber();
    const held = consumer.holdNext();
    const [id] = await emit(tenantId, 1);
    const env = {
      DATABASE_URL: db.url,
      RELAY_METRICS_PORT: '0',
      RELAY_POLL_INTERVAL_MS: '100',
      RELAY_DELIVERY_TIMEOUT_MS: '1000', // lease = timeout + 14 s (see OutboxRelay.leaseMs)
      LOG_LEVEL: 'warn',
      // The consumer listens on loopback, which a relay refuses unless allowlisted.
      WEBHOOK_ALLOWED_HOSTS: TEST_WEBHOOK_ALLOWED_HOSTS.join(','),
    };
    const first = startProcess('relay', env);
    try {
      await within(held.arrived, 'the consumer received the event'); // it applied the effect; the relay waits for the answer
    } finally {
      first.kill('SIGKILL');
      await first.exited;
    }
    held.released();
    const second = startProcess('relay', env);
    try {
      await until(() => consumer.received.length === 2, 30_000);
      // the second relay records the acknowledgement just after the subscriber answered
      await until(async () => (await pool.query("SELECT 1 FROM deliveries WHERE event_id = $1 AND status = 'delivered'", [id])).rowCount === 1, 30_000);
    } finally {
      second.kill('SIGTERM');
      await second.exited;
    }
    expect(consumer.received.map((r) => [r.webhookId, r.duplicate])).toEqual([[id, false], [id, true]]);
    expect(await consumer.effectCount()).toBe(1);
    const { rows } = await pool.query('SELECT status FROM deliveries WHERE event_id = $1', [id]);
    expect(rows).toEqual([{ status: 'delivered' }]);
  });
});
