import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool, type Pool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent, OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import type { OutboxRelay } from '../../src/outbox/relay';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startTestRelay } from '../helpers/relay';
import { until } from '../helpers/until';

/**
 * Several tenants whose every subscription points at a subscriber that never
 * answers hold together far more requests than the relay has slots (5
 * tenants × 4 subscriptions × 4 per subscription = 80 against 60). Before the
 * slow lane they filled the relay, and a healthy tenant's events waited for
 * the held requests' timeouts (here 2 minutes). Now the slow subscriptions
 * share the slow lane (50 % of 60 = 30 slots) and the healthy tenant's
 * events all go out while those 30 requests are still held. Its own
 * database, so no other test's relay takes these deliveries.
 */
describe('several tenants with every subscription stalled cannot fill the relay', () => {
  const admin = createTestPool();
  const database = `share_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let connectionString: string;
  let pool: Pool;
  let relay: OutboxRelay | undefined;
  let consumer: ExampleConsumer | undefined;
  const held: http.ServerResponse[] = [];
  /** Set at teardown: later requests are answered at once, so the relay's stop does not wait for their timeout. */
  let releasing = false;
  const stalled = http.createServer((_request, response) => {
    if (releasing) response.writeHead(503).end();
    else held.push(response);
  });
  /** Answers the first request to each of its paths (a subscription's probe) at once, then holds every later one. */
  const answeredPaths = new Set<string>();
  const turncoat = http.createServer((request, response) => {
    if (releasing) response.writeHead(503).end();
    else if (!answeredPaths.has(request.url!)) {
      answeredPaths.add(request.url!);
      response.writeHead(200).end();
    } else held.push(response);
  });

  beforeAll(async () => {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(testInfra().databaseUrl);
    url.pathname = `/${database}`;
    connectionString = url.toString();
    pool = createPool({ connectionString, max: 4, applicationName: 'onceflow-test-tenant-share' });
    await migrate(pool);
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => turncoat.listen(0, '127.0.0.1', resolve));
  }, 60_000);

  afterAll(async () => {
    releasing = true;
    for (const response of held) response.writeHead(503).end();
    await relay?.stop();
    for (const server of [stalled, turncoat]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await consumer?.close();
    await pool?.end();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });

  /** `count` one-event operations for the subscription's tenant, in one statement. */
  /** A tenant whose one subscription is the example consumer (it answers at once); replaces the consumer of an earlier test. */
  const subscribeHealthyTenant = async (tenantId: string) => {
    await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
    const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    await consumer?.close();
    const started = await startExampleConsumer({ pool, secret: subscription.secret, consumer: tenantId });
    consumer = started;
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [started.url, subscription.id]);
    return { ...subscription, consumer: started };
  };
  const write = (tenantId: string, subscriptionId: string, count: number) =>
    pool.query(
      `WITH e AS (
         INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
         SELECT id || ':operation.succeeded', $1, id, 'operation.succeeded', '{}'::jsonb
           FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $3)) ids
         RETURNING event_id, aggregate_id, seq)
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
       SELECT event_id, $2, aggregate_id, seq FROM e`,
      [tenantId, subscriptionId, count],
    );

  it('delivers every event of a healthy tenant while five stalled tenants hold the whole slow lane', async () => {
    const TENANTS = 5;
    const SUBSCRIPTIONS = 4;
    const PER_SUBSCRIPTION = 4;
    const MAX_IN_FLIGHT = 60;
    const SLOW_LANE = 30; // 50 % of MAX_IN_FLIGHT
    const HEALTHY_EVENTS = 40;
    const secretBox = secretBoxFromConfig({});
    const stalledUrl = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/webhooks`;
    for (let t = 0; t < TENANTS; t++) {
      const tenantId = `stalled-${t}`;
      await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
      for (let i = 0; i < SUBSCRIPTIONS; i++) {
        const { id } = await createSubscription(pool, secretBox, { tenantId, url: stalledUrl, eventTypes: ['*'] });
        await write(tenantId, id, 20);
      }
    }
    expect(TENANTS * SUBSCRIPTIONS * PER_SUBSCRIPTION).toBeGreaterThan(MAX_IN_FLIGHT);
    const healthy = await subscribeHealthyTenant('healthy');

    relay = startTestRelay({
      pool,
      connectionString,
      batchSize: 10,
      maxInFlight: MAX_IN_FLIGHT,
      maxInFlightPerSubscription: PER_SUBSCRIPTION,
      // Long enough that the healthy subscriber, answering at once, is never taken for slow on a loaded machine.
      slowAfterMs: 5_000,
      slowLanePercent: 50,
      deliveryTimeoutMs: 120_000,
    });
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'stalled']);
    await until(() => held.length === SLOW_LANE, 'the stalled tenants hold the whole slow lane');

    // One event written alone first (the new subscription's probe), then a burst, some operations with two events.
    const aggregateId = randomUUID();
    const eventId = `${aggregateId}:operation.succeeded`;
    await withTransaction(pool, (tx) => enqueueEvent(tx, { eventId, tenantId: 'healthy', aggregateId, eventType: 'operation.succeeded', payload: {} }));
    await write('healthy', healthy.id, HEALTHY_EVENTS - 1);
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'healthy']);
    const delivered = async () =>
      (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM deliveries WHERE subscription_id = $1 AND status = 'delivered'", [healthy.id])).rows[0]!.n;
    await until(async () => (await delivered()) === HEALTHY_EVENTS, 'every healthy event delivered and recorded');
    expect(new Set(healthy.consumer.received.map((r) => r.webhookId)).size).toBe(HEALTHY_EVENTS);
    // ...while every stalled request is still open, and the stalled tenants never got more than the slow lane.
    expect(held.filter((r) => r.writableEnded)).toHaveLength(0);
    expect(held).toHaveLength(SLOW_LANE);
  });

  it('delivers a healthy tenant\'s events when tenants that answered in time all stop answering at once and hold the whole relay', async () => {
    // Each colluding subscription answers its probe, so the relay trusts it with its cap, then holds
    // everything: 4 tenants × 4 subscriptions × 4 want 64, the relay has 60. Once they are slow,
    // what they hold past the slow lane (30) stops counting against the relay's room.
    // The first test's relay and subscriptions out of the way: nothing more claimed for them, their held requests answered.
    await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'test finished'");
    for (const response of held.splice(0)) response.writeHead(503).end();
    await relay?.stop();
    relay = undefined;
    for (const response of held.splice(0)) response.writeHead(503).end();
    const MAX_IN_FLIGHT = 60;
    const SLOW_LANE = 30;
    const HEALTHY_EVENTS = 40;
    const secretBox = secretBoxFromConfig({});
    const turncoatUrl = `http://127.0.0.1:${(turncoat.address() as AddressInfo).port}`;
    for (let t = 0; t < 4; t++) {
      const tenantId = `turncoat-${t}`;
      await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
      for (let i = 0; i < 4; i++) {
        const { id } = await createSubscription(pool, secretBox, { tenantId, url: `${turncoatUrl}/${tenantId}/${i}`, eventTypes: ['*'] });
        await write(tenantId, id, 20);
      }
    }
    const healthy = await subscribeHealthyTenant('healthy-2');

    relay = startTestRelay({
      pool,
      connectionString,
      batchSize: 10,
      maxInFlight: MAX_IN_FLIGHT,
      maxInFlightPerSubscription: 4,
      slowAfterMs: 3_000,
      slowLanePercent: 50,
      deliveryTimeoutMs: 120_000,
    });
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'turncoats']);
    await until(() => held.length === MAX_IN_FLIGHT, 'the colluding subscribers hold every slot of the relay');

    await write('healthy-2', healthy.id, HEALTHY_EVENTS);
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'healthy']);
    const delivered = async () =>
      (await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM deliveries WHERE subscription_id = $1 AND status = 'delivered'", [healthy.id])).rows[0]!.n;
    // Without the overflow rule the healthy events waited for the held requests' 2-minute timeout.
    await until(async () => (await delivered()) === HEALTHY_EVENTS, 'every healthy event delivered and recorded');
    expect(held.filter((r) => r.writableEnded)).toHaveLength(0);
    // Never more than their caps (16 × 4; one that had not yet turned slow when the room came back
    // could still fill its cap), and nothing once all are slow: the lane is over-full with what they hold.
    expect(held.length).toBeLessThanOrEqual(16 * 4);
    const heldNow = held.length;
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'turncoats-again']);
    await write('healthy-2', healthy.id, 1);
    await until(async () => (await delivered()) === HEALTHY_EVENTS + 1, 'a later healthy event delivered too');
    expect(held).toHaveLength(heldNow);
    expect(heldNow).toBeGreaterThan(SLOW_LANE);
  });
});
