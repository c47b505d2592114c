import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { migrate } from '../../src/db/migrate';
import { createPool, type Pool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { findFreePort } from '../../dev/ports';
import { listDeadLetters } from '../../src/outbox/dead-letters';
import { enqueueEvent } from '../../src/outbox/enqueue';
import { registerOutboxBacklogGauges } from '../../src/outbox/metrics';
import { type OutboxRelay, type OutboxRelayOptions } from '../../src/outbox/relay';
import { createSubscription } from '../../src/outbox/subscriptions';
import { createTestPool, createTestTenant } from '../helpers/db';
import { startRestartablePostgres, type RestartablePostgres } from './fixtures/private-postgres';
import { testInfra } from '../helpers/infra';
import { startProcess, type RunningProcess } from '../helpers/processes';
import { startTestRelay, TEST_WEBHOOK_ALLOWED_HOSTS } from '../helpers/relay';
import { until } from '../helpers/until';

const secretBox = secretBoxFromConfig({});

/** Rejects after `timeoutMs`, so a promise nobody settles fails the test instead of hanging the run. */
function within<T>(promise: Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not met in time: ${what}`)), timeoutMs).unref())]);
}

/** Writes `perAggregate` events for each of `aggregates` operations in one transaction; returns the event ids in write order. */
async function emit(pool: Pool, tenantId: string, aggregates: number, perAggregate: number): Promise<string[]> {
  const ids: string[] = [];
  await withTransaction(pool, async (tx) => {
    for (let a = 0; a < aggregates; a++) {
      const aggregateId = randomUUID();
      for (let i = 0; i < perAggregate; i++) {
        const eventId = `${aggregateId}:${i}`;
        await enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId, n: i } });
        ids.push(eventId);
      }
    }
  });
  return ids;
}

/** Groups received webhook ids by aggregate, in arrival order. */
function byAggregate(ids: readonly string[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  for (const id of ids) {
    const [aggregateId, n] = id.split(':') as [string, string];
    groups.set(aggregateId, [...(groups.get(aggregateId) ?? []), Number(n)]);
  }
  return groups;
}

describe('the outbox relay under faults', () => {
  let pool: Pool;
  const processes: RunningProcess[] = [];
  const consumers: ExampleConsumer[] = [];
  beforeAll(() => {
    pool = createTestPool();
  });
  afterEach(async () => {
    for (const child of processes.splice(0)) {
      child.kill('SIGTERM');
      await child.exited;
    }
    await Promise.all(consumers.splice(0).map((c) => c.close()));
  });
  afterAll(() => pool.end());

  /** A subscription on `db` whose subscriber is the example consumer (its inbox in the run's PostgreSQL). */
  async function subscriber(db: Pool, options: { port?: number } = {}) {
    const tenantId = await createTestTenant(db);
    const subscription = await createSubscription(db, secretBox, { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
    const consumerName = `c-${randomUUID().slice(0, 8)}`;
    const consumer = await startExampleConsumer({ pool, secret: subscription.secret, consumer: consumerName, port: options.port });
    await db.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscription.id]);
    consumers.push(consumer);
    return { tenantId, subscriptionId: subscription.id, consumer, consumerName, secret: subscription.secret };
  }

  function relayProcess(databaseUrl: string, env: Record<string, string> = {}): RunningProcess {
    const child = startProcess('relay', {
      DATABASE_URL: databaseUrl,
      RELAY_METRICS_PORT: '0',
      RELAY_POLL_INTERVAL_MS: '200',
      RELAY_DELIVERY_TIMEOUT_MS: '1000',
      LOG_LEVEL: 'info',
      // The consumers listen on loopback, which a relay refuses unless allowlisted.
      WEBHOOK_ALLOWED_HOSTS: TEST_WEBHOOK_ALLOWED_HOSTS.join(','),
      ...env,
    });
    processes.push(child);
    return child;
  }

  // No other test file's relay reaches this PostgreSQL: what a test sees here is its own relays' doing.
  describe('with its own PostgreSQL, stopped and started under the relays', () => {
    let dir: string;
    let postgres: RestartablePostgres;
    let relayDb: Pool;
    const inProcess: { relay: OutboxRelay; pool: Pool }[] = [];
    afterEach(async () => {
      for (const { relay, pool: own } of inProcess.splice(0)) {
        await relay.stop();
        await own.end();
      }
    });

    /** An in-process relay on this PostgreSQL with a pool of its own (named, so pg_stat_activity can tell it apart). */
    function ownRelay(options: Partial<OutboxRelayOptions> & { applicationName?: string } = {}): OutboxRelay {
      const { applicationName = 'onceflow-test-own-relay', ...relayOptions } = options;
      const own = createPool({ connectionString: postgres.connectionString, max: 3, applicationName });
      const relay = startTestRelay({ pool: own, connectionString: postgres.connectionString, pollIntervalMs: 50, deliveryTimeoutMs: 10_000, ...relayOptions });
      inProcess.push({ relay, pool: own });
      return relay;
    }
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'onceflow-relay-restart-'));
      await chmod(dir, 0o755);
      postgres = await startRestartablePostgres(path.join(dir, 'pg'), await findFreePort());
      relayDb = createPool({ connectionString: postgres.connectionString, max: 3, applicationName: 'onceflow-test-restart' });
      await migrate(relayDb);
    });
    afterAll(async () => {
      await relayDb?.end();
      await postgres?.exit();
      await rm(dir, { recursive: true, force: true });
    });

    it('reconnects, re-LISTENs and delivers everything written before and after the restart, each effect once', async () => {
      const { tenantId, consumer } = await subscriber(relayDb);
      // A poll interval far beyond the test's bounds: events written after the
      // restart reach the relay only through a re-established LISTEN.
      const relay = relayProcess(postgres.connectionString, { RELAY_POLL_INTERVAL_MS: '600000' });
      await relay.waitForOutput(/relay delivering/);
      const before = await emit(relayDb, tenantId, 10, 3);
      await until(() => consumer.received.length >= before.length, 'first batch delivered');

      // In-flight too: these are written just before the stop; some may be on the wire when the server goes.
      const inFlight = await emit(relayDb, tenantId, 10, 3);
      await postgres.stop();
      await relay.waitForOutput(/LISTEN connection lost/);
      await postgres.start();
      await until(
        async () => (await relayDb.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'onceflow-relay-listen'")).rowCount === 1,
        'the LISTEN connection is back',
      );
      const after = await emit(relayDb, tenantId, 10, 3);
      const expected = new Set([...before, ...inFlight, ...after]);
      await until(async () => (await consumer.effectCount()) === expected.size, 'every event applied');

      const ids = consumer.received.map((r) => r.webhookId);
      const duplicates = ids.length - new Set(ids).size;
      process.stdout.write(`PostgreSQL restart: ${expected.size} events, ${duplicates} redeliveries (dropped by the inbox)\n`);
      expect(new Set(ids)).toEqual(expected);
      expect(consumer.received.filter((r) => !r.duplicate)).toHaveLength(expected.size);
      // The relay records an outcome after the subscriber answered: wait for the last ones.
      await until(
        async () => (await relayDb.query("SELECT 1 FROM deliveries WHERE status <> 'delivered'")).rowCount === 0,
        'every delivery recorded as delivered',
      );
      expect((await relayDb.query('SELECT count(*)::int AS n FROM deliveries')).rows[0].n).toBe(expected.size);
      expect(relay.child.exitCode).toBeNull();
    });

    it('does not redeliver when PostgreSQL goes away right after a delivery, for longer than recording used to be retried: the lease covers the recording', async () => {
      const { tenantId, consumer } = await subscriber(relayDb);
      const held = consumer.holdNext();
      // Two relays, so a lease that runs out while the first is still trying to
      // record is taken over by the second, which delivers again. A short
      // delivery timeout made the old lease (2 × timeout + 5 s) shorter than the
      // time spent retrying the record.
      for (const name of ['a', 'b']) ownRelay({ deliveryTimeoutMs: 2_000, applicationName: `onceflow-test-lease-${name}` });
      const [id] = await emit(relayDb, tenantId, 1, 1);
      await within(held.arrived, 'the consumer received the event'); // it applied the effect; its answer waits
      await postgres.stop();
      held.released(); // the relay has its 200 now and cannot record it
      // Longer than the old recording retries (~6.2 s) and than the old lease
      // with this timeout (9 s); well inside the new one (timeout + 14 s).
      await new Promise((r) => setTimeout(r, 9_000));
      await postgres.start();
      await until(
        async () => (await relayDb.query("SELECT 1 FROM deliveries WHERE event_id = $1 AND status = 'delivered'", [id])).rowCount === 1,
        'the delivery recorded',
      );
      expect(consumer.received.map((r) => [r.webhookId, r.duplicate])).toEqual([[id, false]]);
    });

    it('wakes at once for a NOTIFY that arrived while a round that found nothing was still running, with a 10-minute poll interval', async () => {
      const { tenantId, subscriptionId, consumer } = await subscriber(relayDb);
      // A slow round that finds nothing: many due deliveries, every one row-locked
      // by another transaction (as another relay's claim does), which the claim
      // skips one by one.
      await relayDb.query(
        `WITH e AS (INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
                    SELECT 'locked-' || g, $1, 'locked-' || g, 'operation.succeeded', '{}' FROM generate_series(1, 50000) g
                    RETURNING event_id, aggregate_id, seq)
         INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq) SELECT event_id, $2, aggregate_id, seq FROM e`,
        [tenantId, subscriptionId],
      );
      const locker = await relayDb.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('SELECT 1 FROM deliveries WHERE subscription_id = $1 FOR UPDATE', [subscriptionId]);
        ownRelay({ pollIntervalMs: 600_000, applicationName: 'onceflow-test-slow-round' });
        await until(
          async () =>
            (await relayDb.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'onceflow-test-slow-round' AND state = 'active' AND query LIKE '%onceflow relay claim%'"))
              .rowCount === 1,
          'the relay is in the middle of a claim',
          30_000,
        );
        // Committed (and notified) after that claim took its snapshot: it cannot see this event.
        const [id] = await emit(relayDb, tenantId, 1, 1);
        await until(() => consumer.received.length === 1, 'delivered without waiting for the poll interval', 15_000);
        expect(consumer.received[0]!.webhookId).toBe(id);
      } finally {
        // Stopped first: released, the locked rows would all go out.
        for (const { relay } of inProcess) await relay.stop();
        await locker.query('ROLLBACK');
        locker.release();
        await relayDb.query('DELETE FROM subscriptions WHERE subscription_id = $1', [subscriptionId]);
        await relayDb.query("DELETE FROM outbox_events WHERE event_id LIKE 'locked-%'");
      }
    });

    it('keeps delivering to other subscribers while one subscriber holds a delivery open: claims do not wait for a batch to finish', async () => {
      const slow = await subscriber(relayDb);
      const other = await subscriber(relayDb);
      const held = slow.consumer.holdNext();
      // A timeout far beyond the test, so the held delivery stays on the wire throughout.
      ownRelay({ batchSize: 10, deliveryTimeoutMs: 120_000 });
      const [slowId] = await emit(relayDb, slow.tenantId, 1, 1);
      await within(held.arrived, 'the slow subscriber received its event');
      // Three claims' worth, written after the held one was claimed.
      const ids = await emit(relayDb, other.tenantId, 30, 1);
      try {
        await until(() => other.consumer.received.length === ids.length, 'the other subscriber got everything while one delivery is held');
        expect(other.consumer.received.map((r) => r.webhookId).sort()).toEqual([...ids].sort());
      } finally {
        held.released();
      }
      await until(
        async () => (await relayDb.query("SELECT 1 FROM deliveries WHERE event_id = $1 AND status = 'delivered'", [slowId])).rowCount === 1,
        'the held delivery recorded once answered',
      );
    });

    it('keeps the backlog gauges at their last reading while PostgreSQL is unreachable, instead of reporting an empty backlog', async () => {
      const registry = new Registry();
      registerOutboxBacklogGauges(registry, relayDb);
      const gauge = async (name: string) => (await registry.getSingleMetric(name)!.get()).values[0]?.value;
      // No relay runs against this database now: the three stay pending.
      const { tenantId, subscriptionId } = await subscriber(relayDb);
      await emit(relayDb, tenantId, 3, 1);
      expect(await gauge('onceflow_outbox_pending')).toBe(3);
      const age = await gauge('onceflow_outbox_oldest_pending_age_seconds');
      expect(age).toBeGreaterThan(0);

      await postgres.stop();
      try {
        expect(await gauge('onceflow_outbox_pending')).toBe(3);
        expect(await gauge('onceflow_outbox_oldest_pending_age_seconds')).toBe(age);
      } finally {
        await postgres.start();
      }
      await relayDb.query('DELETE FROM subscriptions WHERE subscription_id = $1', [subscriptionId]);
      expect(await gauge('onceflow_outbox_pending')).toBe(0);
    });
  });

  it('loses nothing while a subscriber is down for longer than its attempts last: it keeps retrying until the dead-letter age', async () => {
    const port = await findFreePort();
    const { tenantId, subscriptionId, consumer, consumerName, secret } = await subscriber(pool, { port });
    await consumer.close();
    consumers.splice(consumers.indexOf(consumer), 1);
    const ids = await emit(pool, tenantId, 3, 2);
    // Compressed timing: the "hour" is many capped retries; maxAttempts alone would have dead-lettered after 3.
    const relay = startTestRelay({ pool, pollIntervalMs: 50, retryBaseMs: 10, retryCapMs: 100, maxAttempts: 3, deadLetterAfterMs: 10 * 60_000, deliveryTimeoutMs: 10_000 });
    try {
      await until(
        async () =>
          (await pool.query('SELECT count(*) FILTER (WHERE attempts >= 6)::int AS n FROM deliveries WHERE subscription_id = $1', [subscriptionId])).rows[0].n === 3,
        'the first event of each operation tried twice its attempt budget (the second waits behind it)',
      );
      expect((await listDeadLetters(pool, { subscriptionId })).data).toEqual([]);
      const back = await startExampleConsumer({ pool, secret, consumer: consumerName, port });
      consumers.push(back);
      await until(() => back.received.length >= ids.length, 'all delivered once the subscriber is back');
      expect(back.received.map((r) => r.webhookId).sort()).toEqual([...ids].sort());
      for (const [, order] of byAggregate(back.received.map((r) => r.webhookId))) expect(order).toEqual([0, 1]);
    } finally {
      await relay.stop();
    }
  });

  it('delivers 10,000 events through three relay processes: none lost, duplicates counted (0), each operation in order', async () => {
    const { tenantId, consumer } = await subscriber(pool);
    const expected = new Set<string>();
    // 2,000 operations of 5 events each, written in 20 transactions.
    for (let batch = 0; batch < 20; batch++) for (const id of await emit(pool, tenantId, 100, 5)) expected.add(id);
    // The default delivery timeout: the consumer shares this process and its five connections with the test, and an answer slower than the timeout is a (legitimate) redelivery, not what this test counts.
    const env = { RELAY_BATCH_SIZE: '200', RELAY_DELIVERY_TIMEOUT_MS: '10000', LOG_LEVEL: 'warn' };
    const metricsPorts = [await findFreePort(), await findFreePort(), await findFreePort()];
    const relays = metricsPorts.map((port) => relayProcess(testInfra().databaseUrl, { ...env, RELAY_METRICS_PORT: String(port) }));
    await until(() => consumer.received.length >= expected.size, '10,000 delivered', 120_000);
    // A little longer, so a late duplicate would still be seen.
    await new Promise((r) => setTimeout(r, 500));
    const ids = consumer.received.map((r) => r.webhookId);
    const duplicates = ids.length - new Set(ids).size;
    process.stdout.write(`10,000 events over three relay processes: delivered ${new Set(ids).size}, duplicates ${duplicates}\n`);
    expect(duplicates).toBe(0);
    expect(new Set(ids)).toEqual(expected);
    expect(await consumer.effectCount()).toBe(expected.size);
    // Per operation, in the order written, although three relays share the work.
    for (const [, order] of byAggregate(ids)) expect(order).toEqual([0, 1, 2, 3, 4]);
    // Every relay took part (leases spread the work).
    const { rows } = await pool.query<{ relays: number }>(
      'SELECT count(DISTINCT locked_by)::int AS relays FROM deliveries WHERE event_id = ANY($1)',
      [[...expected]],
    );
    expect(rows[0]!.relays).toBeGreaterThanOrEqual(2);
    for (const relay of relays) expect(relay.child.exitCode).toBeNull();

    // Each relay's /metrics: together they counted every delivery and its latency once.
    const scrapes = await Promise.all(metricsPorts.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()));
    const total = (name: string) =>
      scrapes.reduce((sum, text) => sum + [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0), 0);
    // Other test files' deliveries share this database, so compare with every delivery these three relays recorded.
    const { rows: recorded } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM deliveries WHERE status = 'delivered'
          AND locked_by IN (SELECT DISTINCT locked_by FROM deliveries WHERE event_id = ANY($1))`,
      [[...expected]],
    );
    expect(recorded[0]!.n).toBeGreaterThanOrEqual(expected.size);
    expect(total('onceflow_outbox_delivered_total')).toBe(recorded[0]!.n);
    expect(total('onceflow_outbox_delivery_latency_seconds_count')).toBe(recorded[0]!.n);
    for (const text of scrapes) {
      expect(text).toMatch(/^onceflow_outbox_pending \d+$/m);
      expect(text).toMatch(/^onceflow_outbox_oldest_pending_age_seconds \S+$/m);
    }
  });
});
