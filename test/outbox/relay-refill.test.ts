import { randomUUID } from 'node:crypto';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool, type Pool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import type { OutboxRelay } from '../../src/outbox/relay';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startTestRelay } from '../helpers/relay';
import { until } from '../helpers/until';

/**
 * A backlog for one subscriber larger than its per-subscription cap goes out
 * claim after claim without waiting for the poll interval: the relay wakes
 * itself as the subscriber's answers free its share (src/outbox/in-flight.ts).
 * Before, a claim that refilled the subscriber only to half its cap was
 * never followed by a wake-up, and the rest waited a poll interval per claim
 * (~96 events/s in the outbox benchmark). Here the poll interval is 10
 * minutes and there is one NOTIFY: only the relay's own wake-ups can deliver
 * the backlog. Its own database, so no other test's relay delivers these rows.
 */
describe('a relay refills a subscriber at its cap without waiting for the poll', () => {
  const admin = createTestPool();
  const database = `refill_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let connectionString: string;
  let pool: Pool;
  let relay: OutboxRelay | undefined;
  let consumer: ExampleConsumer | undefined;

  beforeAll(async () => {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(testInfra().databaseUrl);
    url.pathname = `/${database}`;
    connectionString = url.toString();
    pool = createPool({ connectionString, max: 4, applicationName: 'onceflow-test-refill' });
    await migrate(pool);
  }, 60_000);

  afterAll(async () => {
    await relay?.stop();
    await consumer?.close();
    await pool?.end();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });

  it('delivers 300 events to one subscriber with a cap of 4 on the wire and a 10-minute poll interval', async () => {
    const tenantId = 'refill';
    await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
    const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    consumer = await startExampleConsumer({ pool, secret: subscription.secret, consumer: 'refill' });
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscription.id]);
    relay = startTestRelay({ pool, connectionString, pollIntervalMs: 600_000, maxInFlightPerSubscription: 4, batchSize: 10 });
    // Written by one statement, announced by one NOTIFY.
    await pool.query(
      `WITH e AS (
         INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
         SELECT id || ':operation.succeeded', $1, id, 'operation.succeeded', '{}'::jsonb
           FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, 300)) ids
         RETURNING event_id, aggregate_id, seq)
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
       SELECT event_id, $2, aggregate_id, seq FROM e`,
      [tenantId, subscription.id],
    );
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'refill']);
    await until(
      async () => (await pool.query("SELECT 1 FROM deliveries WHERE subscription_id = $1 AND status <> 'delivered' LIMIT 1", [subscription.id])).rowCount === 0,
      'every event delivered with no poll in between',
      60_000,
    );
    expect(new Set(consumer.received.map((r) => r.webhookId)).size).toBe(300);
  });
});
