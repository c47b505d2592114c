import { randomUUID } from 'node:crypto';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool, type Pool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { claimDueDeliveries } from '../../src/outbox/claim';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';

/**
 * Fair claiming (issue #13), as the relay's claim statement sees it: tenant
 * A's burst of 10,000 deliveries, all due before any of tenant B's, must not
 * push B's behind it. Its own database, so no relay of another test claims
 * these rows and the claims below are the only ones.
 */
describe('a burst of one tenant does not push another tenant’s deliveries behind it', () => {
  const admin = createTestPool();
  const database = `fair_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  let pool: Pool;
  const A_EVENTS = 10_000;
  const PER_SUBSCRIPTION = 64;
  const LIMIT = 200;
  let a: string;
  let b: string;

  /** `count` one-event operations for the subscription's tenant, in one statement; returns their event ids. */
  const write = async (tenantId: string, subscriptionId: string, count: number): Promise<string[]> => {
    const { rows } = await pool.query<{ event_id: string }>(
      `WITH e AS (
         INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
         SELECT id || ':operation.succeeded', $1, id, 'operation.succeeded', '{}'::jsonb
           FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $3)) ids
         RETURNING event_id, aggregate_id, seq)
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
       SELECT event_id, $2, aggregate_id, seq FROM e
       RETURNING event_id`,
      [tenantId, subscriptionId, count],
    );
    return rows.map((r) => r.event_id);
  };

  beforeAll(async () => {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(testInfra().databaseUrl);
    url.pathname = `/${database}`;
    pool = createPool({ connectionString: url.toString(), max: 2, applicationName: 'onceflow-test-fair-claim' });
    await migrate(pool);
    const subscribe = async (tenantId: string) => {
      await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
      return (await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] })).id;
    };
    a = await subscribe('tenant-a');
    b = await subscribe('tenant-b');
    await write('tenant-a', a, A_EVENTS);
    // Every one of A's deliveries is due earlier than B's: one global walk in due order would claim only A's.
    await pool.query("UPDATE deliveries SET next_attempt_at = now() - interval '1 hour' WHERE subscription_id = $1", [a]);
  }, 120_000);

  afterAll(async () => {
    await pool?.end();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });

  it('claims all of B’s events in the first round and at most the per-subscription share of A’s backlog', async () => {
    const bEvents = await write('tenant-b', b, 10);
    const claimed = await claimDueDeliveries(pool, { limit: LIMIT, leaseMs: 60_000, relayId: 'relay-test', perSubscription: PER_SUBSCRIPTION });
    expect(claimed.filter((d) => d.subscription_id === b).map((d) => d.event_id).sort()).toEqual([...bEvents].sort());
    expect(claimed.filter((d) => d.subscription_id === a)).toHaveLength(PER_SUBSCRIPTION);
  });

  it('takes none of A’s while A’s subscriber holds its whole share on the wire, and still all of B’s new events', async () => {
    const bEvents = await write('tenant-b', b, 10);
    // What the relay passes when A's slow subscriber holds PER_SUBSCRIPTION requests open (InFlight.subscriptionBudgets).
    const claimed = await claimDueDeliveries(pool, {
      limit: LIMIT,
      leaseMs: 60_000,
      relayId: 'relay-test',
      perSubscription: PER_SUBSCRIPTION,
      subscriptionBudgets: { ids: [a], remaining: [0] },
    });
    expect(claimed.map((d) => d.event_id).sort()).toEqual([...bEvents].sort());
  });
});
