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
 * One tenant whose every subscription (up to the per-tenant cap) points at a
 * subscriber that never answers holds its whole share of the relay, and the
 * relay still claims for other tenants. With the old sizing (2 × batch) that
 * share left less than the half batch the relay waits for, and the other
 * tenant's event waited for the held requests' timeouts (here 2 minutes).
 * Its own database, so no other test's relay takes these deliveries.
 */
describe('one tenant with every subscription stalled cannot fill the relay', () => {
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

  beforeAll(async () => {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(testInfra().databaseUrl);
    url.pathname = `/${database}`;
    connectionString = url.toString();
    pool = createPool({ connectionString, max: 4, applicationName: 'onceflow-test-tenant-share' });
    await migrate(pool);
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  }, 60_000);

  afterAll(async () => {
    releasing = true;
    for (const response of held) response.writeHead(503).end();
    await relay?.stop();
    stalled.closeAllConnections();
    await new Promise((resolve) => stalled.close(resolve));
    await consumer?.close();
    await pool?.end();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });

  it('delivers another tenant’s event while the stalled tenant holds its whole share', async () => {
    const SUBSCRIPTIONS = 4;
    const PER_SUBSCRIPTION = 4;
    const secretBox = secretBoxFromConfig({});
    await pool.query("INSERT INTO tenants (tenant_id) VALUES ('stalled'), ('other')");
    const stalledUrl = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/webhooks`;
    for (let i = 0; i < SUBSCRIPTIONS; i++) {
      const { id } = await createSubscription(pool, secretBox, { tenantId: 'stalled', url: stalledUrl, eventTypes: ['*'] });
      await pool.query(
        `WITH e AS (
           INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
           SELECT id || ':operation.succeeded', 'stalled', id, 'operation.succeeded', '{}'::jsonb
             FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, 20)) ids
           RETURNING event_id, aggregate_id, seq)
         INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
         SELECT event_id, $1, aggregate_id, seq FROM e`,
        [id],
      );
    }
    const other = await createSubscription(pool, secretBox, { tenantId: 'other', url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    consumer = await startExampleConsumer({ pool, secret: other.secret, consumer: 'other' });
    await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, other.id]);

    relay = startTestRelay({
      pool,
      connectionString,
      batchSize: 10,
      maxInFlightPerSubscription: PER_SUBSCRIPTION,
      maxSubscriptionsPerTenant: SUBSCRIPTIONS,
      deliveryTimeoutMs: 120_000,
    });
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'stalled']);
    await until(() => held.length === SUBSCRIPTIONS * PER_SUBSCRIPTION, 'the stalled tenant holds its whole share');

    const aggregateId = randomUUID();
    const eventId = `${aggregateId}:operation.succeeded`;
    await withTransaction(pool, (tx) => enqueueEvent(tx, { eventId, tenantId: 'other', aggregateId, eventType: 'operation.succeeded', payload: {} }));
    await until(() => consumer!.received.some((r) => r.webhookId === eventId), 'the other tenant’s event delivered while the stalled requests are held');
    // The stalled tenant got no more than its share.
    expect(held).toHaveLength(SUBSCRIPTIONS * PER_SUBSCRIPTION);
  });
});
