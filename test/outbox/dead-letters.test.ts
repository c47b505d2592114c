import { randomUUID } from 'node:crypto';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { listDeadLetters, replayDeadLetters } from '../../src/outbox/dead-letters';
import { enqueueEvent } from '../../src/outbox/enqueue';
import { type OutboxRelay } from '../../src/outbox/relay';
import { createSubscription, getSubscription, updateSubscription } from '../../src/outbox/subscriptions';
import { createTestPool, createTestTenant } from '../helpers/db';
import { startTestRelay } from '../helpers/relay';
import { until } from '../helpers/until';

const secretBox = secretBoxFromConfig({});

// Other test files' relays share this database and claim every due delivery of
// every tenant: each subscriber here is the example consumer, which any relay
// can serve, so whichever relay takes a delivery, the outcome is the same.
describe('replaying dead letters', () => {
  let pool: Pool;
  let relay: OutboxRelay;
  const consumers: ExampleConsumer[] = [];
  beforeAll(() => {
    pool = createTestPool();
    relay = startTestRelay({ pool });
  });
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await relay.stop();
    await pool.end();
  });

  async function subscriber() {
    const tenantId = await createTestTenant(pool);
    const subscription = await createSubscription(pool, secretBox, { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    const consumer = await startExampleConsumer({ pool, secret: subscription.secret, consumer: `c-${randomUUID().slice(0, 8)}` });
    consumers.push(consumer);
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscription.id]);
    return { tenantId, subscriptionId: subscription.id, consumer };
  }

  const event = (tenantId: string) => {
    const aggregateId = randomUUID();
    return { eventId: `${aggregateId}:operation.succeeded`, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } };
  };

  it('re-enables a subscription the relay disabled because its subscriber answered 410 Gone, and delivers the replayed event', async () => {
    const { tenantId, subscriptionId, consumer } = await subscriber();
    consumer.failNext(410);
    const { eventId } = event(tenantId);
    await withTransaction(pool, (tx) => enqueueEvent(tx, { ...event(tenantId), eventId }));
    await until(async () => (await listDeadLetters(pool, { subscriptionId })).data.length === 1, 'dead-lettered by the 410');
    expect(await getSubscription(pool, tenantId, subscriptionId)).toMatchObject({ status: 'disabled' });

    expect(await replayDeadLetters(pool, { subscriptionId })).toEqual({ replayed: 1, more: false });
    expect(await getSubscription(pool, tenantId, subscriptionId)).toMatchObject({ status: 'active', disabledReason: null });
    await until(() => consumer.received.length === 1, 'the replayed event delivered');
    expect(consumer.received[0]).toMatchObject({ webhookId: eventId, duplicate: false });
  });

  it('leaves a subscription the tenant paused through the API paused: the replayed delivery waits until the tenant resumes it', async () => {
    const { tenantId, subscriptionId, consumer } = await subscriber();
    const { eventId } = event(tenantId);
    // A delivery that dead-lettered while the subscription was active, then the
    // tenant paused it (PATCH /v1/subscriptions/{id} calls updateSubscription).
    // One transaction, so no relay sees the delivery pending before it is dead.
    await withTransaction(pool, async (tx) => {
      await enqueueEvent(tx, { ...event(tenantId), eventId });
      await tx.query("UPDATE deliveries SET status = 'dead', attempts = 12, last_error = 'HTTP 503' WHERE event_id = $1", [eventId]);
    });
    await updateSubscription(pool, tenantId, subscriptionId, { status: 'disabled' });

    expect(await replayDeadLetters(pool, { subscriptionId })).toEqual({ replayed: 1, more: false });
    expect(await getSubscription(pool, tenantId, subscriptionId)).toMatchObject({ status: 'disabled', disabledReason: 'disabled through the API' });
    // Relays (ours and other files') poll every 100 ms or so; a paused subscription gets nothing.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(consumer.received).toEqual([]);
    expect((await pool.query('SELECT status FROM deliveries WHERE event_id = $1', [eventId])).rows).toEqual([{ status: 'pending' }]);

    await updateSubscription(pool, tenantId, subscriptionId, { status: 'active' });
    await pool.query("SELECT pg_notify('onceflow_outbox', 'resumed')");
    await until(() => consumer.received.length === 1, 'delivered once the tenant resumed it');
    expect(consumer.received[0]).toMatchObject({ webhookId: eventId, duplicate: false });
  });
});
