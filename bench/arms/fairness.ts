/**
 * 7. Fairness across tenants (issue #13): tenant A enqueues 10,000 events to
 * a subscriber that takes 5 s to answer each, tenant B then enqueues 10
 * events to a fast subscriber; B's publish lag (event row created → relay's
 * recorded acknowledgement, by PostgreSQL's clock) must stay under 1 s at the
 * 99th percentile while A's backlog waits.
 *
 * Real parts only: the run's relay process, its PostgreSQL, and two subscriber
 * processes of their own (bench/servers/delayed-subscriber.ts, Standard
 * Webhooks check, 5,000 ms and 0 ms before the 200). A's events are written
 * by one set-based statement (the same rows enqueueEvent writes; writing them
 * is not what this measures) and released with a NOTIFY; B's go through
 * enqueueEvent, one transaction each, 10 per second, as a workflow writes them.
 * Reference: the same 10 events of B with A idle, in the same run.
 *
 * Second row, several slow tenants: A's backlog dropped, SLOW_TENANTS tenants
 * with SLOW_SUBSCRIPTIONS subscriptions each (the per-tenant cap) and a
 * backlog on every one, to a subscriber per tenant that answers after
 * SLOW_DELAY_MS, longer than the relay's delivery timeout (never in time).
 * Together they want far more requests than the relay has slots; the slow
 * lane (src/outbox/in-flight.ts) keeps the rest for B. Same target.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Pool } from '../../src/db/pool';
import { createPool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent, OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import type { BenchContext, Figure } from '../lib/context';
import { percentile, round, sleep, until } from '../lib/stats';
import { startSubscriberProcess, subscribe } from './outbox';

const A_EVENTS = 10_000;
const A_DELAY_MS = 5_000;
const B_EVENTS = 10;
const B_RATE_PER_SECOND = 10;
const SLOW_TENANTS = 5;
const SLOW_SUBSCRIPTIONS = 10;
const SLOW_EVENTS_PER_SUBSCRIPTION = 200;
const SLOW_DELAY_MS = 60_000;

interface Party {
  tenantId: string;
  subscriptionId: string;
  statsUrl: string;
  stop(): Promise<void>;
}

async function party(pool: Pool, tenantId: string, delayMs: number): Promise<Party> {
  const { subscriptionId, secret } = await subscribe(pool, tenantId);
  const { url, process } = await startSubscriberProcess('bench/servers/delayed-subscriber.ts', { WEBHOOK_SECRET: secret, DELAY_MS: String(delayMs) });
  await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [url, subscriptionId]);
  return { tenantId, subscriptionId, statsUrl: new URL('/stats', url).toString(), stop: () => process.stop() };
}

async function stats(party: Party): Promise<{ received: number; inFlight: number }> {
  return (await (await fetch(party.statsUrl)).json()) as { received: number; inFlight: number };
}

export async function fairness(ctx: BenchContext): Promise<void> {
  const pool = createPool({ connectionString: ctx.infra.databaseUrl, max: 4, applicationName: 'onceflow-bench-fairness' });
  const runId = randomUUID().slice(0, 6);
  const parties: Party[] = [];
  try {
    const a = await party(pool, `bench-fair-${runId}-a`, A_DELAY_MS);
    parties.push(a);
    const b = await party(pool, `bench-fair-${runId}-b`, 0);
    parties.push(b);

    ctx.log('  fairness: warm-up and reference (B alone)');
    await publishB(pool, b);
    const alone: number[] = [];
    for (let run = 0; run < ctx.runs; run++) alone.push(...(await publishB(pool, b)));

    const loadAtStart = os.loadavg().map((l) => round(l, 2));
    ctx.log(`  fairness: tenant A enqueues ${A_EVENTS} events to a subscriber answering after ${A_DELAY_MS} ms`);
    await pool.query(
      `WITH e AS (
         INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
         SELECT a || ':operation.succeeded', $1, a, 'operation.succeeded', jsonb_build_object('operationId', a)
           FROM (SELECT gen_random_uuid()::text AS a FROM generate_series(1, $3)) ids
         RETURNING event_id, aggregate_id, seq)
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
       SELECT event_id, $2, aggregate_id, seq FROM e`,
      [a.tenantId, a.subscriptionId, A_EVENTS],
    );
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'bench-fairness']);
    // B publishes once A's subscriber holds the relay's share for it, so every B event competes with the backlog:
    // past its first delivery (the relay's probe of a subscriber it does not know, src/outbox/in-flight.ts).
    await until(async () => (await stats(a)).inFlight > 1, "A's subscriber holding more than the relay's probe", 60_000, 20);
    await sleep(1_000);
    const aInFlight = (await stats(a)).inFlight;
    ctx.log(`  fairness: A's subscriber holds ${aInFlight} requests; tenant B publishes ${B_EVENTS} events, ${ctx.runs} times`);
    const contended: number[] = [];
    const perRunP99: number[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const lags = await publishB(pool, b);
      contended.push(...lags);
      perRunP99.push(percentile(lags, 99));
      ctx.log(`  fairness run ${run + 1}/${ctx.runs}: B lag p50 ${round(percentile(lags, 50), 1)} ms, max ${round(Math.max(...lags), 1)} ms`);
    }
    const aPending = Number((await pool.query<{ n: string }>("SELECT count(*) AS n FROM deliveries WHERE subscription_id = $1 AND status = 'pending'", [a.subscriptionId])).rows[0]!.n);
    const p99 = percentile(contended, 99);
    const aloneP99 = percentile(alone, 99);
    ctx.log(`  fairness: B p99 ${round(p99, 1)} ms with A's backlog (${aPending} of A's deliveries still pending), ${round(aloneP99, 1)} ms alone`);
    ctx.raw.fairness = { aEvents: A_EVENTS, aDelayMs: A_DELAY_MS, aInFlight, aPendingAfter: aPending, contendedLagsMs: contended, aloneLagsMs: alone, perRunP99, loadAtStart };
    ctx.figures.push(lagFigure(
      `tenant B publish lag p99, ${B_EVENTS} events × ${ctx.runs} runs, behind tenant A's ${A_EVENTS} events to a ${A_DELAY_MS / 1000} s subscriber`,
      p99,
      `p50 ${round(percentile(contended, 50), 1)} ms; B alone p99 ${round(aloneP99, 1)} ms; A's subscriber held ${aInFlight} requests, ${aPending} of A's deliveries still pending after; load average ${loadAtStart.join(' ')}`,
    ));

    // A's backlog out of the way, so the second row measures the slow tenants alone.
    await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'bench: done' WHERE subscription_id = $1", [a.subscriptionId]);
    await pool.query('DELETE FROM deliveries WHERE subscription_id = $1', [a.subscriptionId]);
    await severalSlowTenants(ctx, pool, b, runId, parties);
  } finally {
    // A's backlog would take the relay ~13 minutes at 64 deliveries per 5 s: drop it, then stop the subscribers.
    for (const p of parties) {
      await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'bench: done' WHERE subscription_id = $1", [p.subscriptionId]);
      await pool.query('DELETE FROM deliveries WHERE subscription_id = $1', [p.subscriptionId]);
    }
    for (const p of parties) await p.stop();
    await pool.end();
  }
}

/**
 * SLOW_TENANTS tenants × SLOW_SUBSCRIPTIONS subscriptions, each with a
 * backlog, to one subscriber process per tenant that answers after the
 * relay's timeout; then B publishes as in the first row. A tenant's
 * subscriptions share its first one's secret (set in the database) so one
 * verifying process serves them all.
 */
async function severalSlowTenants(ctx: BenchContext, pool: Pool, b: Party, runId: string, parties: Party[]): Promise<void> {
  const slow: Party[] = [];
  for (let t = 0; t < SLOW_TENANTS; t++) {
    const first = await party(pool, `bench-fair-${runId}-slow${t}`, SLOW_DELAY_MS);
    parties.push(first);
    slow.push(first);
    for (let i = 1; i < SLOW_SUBSCRIPTIONS; i++) {
      const { subscriptionId } = await subscribe(pool, first.tenantId, { existingTenant: true });
      await pool.query(
        `UPDATE subscriptions s SET url = f.url, secret_sealed = f.secret_sealed
           FROM subscriptions f WHERE f.subscription_id = $2 AND s.subscription_id = $1`,
        [subscriptionId, first.subscriptionId],
      );
      parties.push({ ...first, subscriptionId, stop: async () => {} });
    }
  }
  const slowTenants = slow.map((p) => p.tenantId);
  await pool.query(
    `WITH ids AS (
       SELECT gen_random_uuid()::text AS a, s.tenant_id, s.subscription_id
         FROM subscriptions s, generate_series(1, $2) WHERE s.tenant_id = ANY ($1)),
     e AS (
       INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
       SELECT a || ':operation.succeeded', tenant_id, a, 'operation.succeeded', jsonb_build_object('operationId', a) FROM ids
       RETURNING event_id, aggregate_id, seq)
     INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
     SELECT e.event_id, ids.subscription_id, e.aggregate_id, e.seq FROM e JOIN ids ON ids.a = e.aggregate_id`,
    [slowTenants, SLOW_EVENTS_PER_SUBSCRIPTION],
  );
  await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'bench-fairness-slow']);
  await until(async () => (await stats(slow[0]!)).inFlight > 0, 'the slow subscribers receiving', 60_000, 20);
  // Long enough for the relay to find them slow (RELAY_SLOW_AFTER_MS, 2 s) and fill its slow lane with them.
  await sleep(5_000);
  const held = (await Promise.all(slow.map((p) => stats(p)))).reduce((n, s) => n + s.inFlight, 0);
  ctx.log(`  fairness: ${SLOW_TENANTS} slow tenants × ${SLOW_SUBSCRIPTIONS} subscriptions hold ${held} requests; tenant B publishes ${B_EVENTS} events, ${ctx.runs} times`);
  const lags: number[] = [];
  for (let run = 0; run < ctx.runs; run++) lags.push(...(await publishB(pool, b)));
  const p99 = percentile(lags, 99);
  ctx.log(`  fairness: B p99 ${round(p99, 1)} ms behind ${SLOW_TENANTS} slow tenants`);
  ctx.raw.fairnessSlowTenants = { tenants: SLOW_TENANTS, subscriptions: SLOW_SUBSCRIPTIONS, eventsPerSubscription: SLOW_EVENTS_PER_SUBSCRIPTION, delayMs: SLOW_DELAY_MS, held, lagsMs: lags };
  ctx.figures.push(lagFigure(
    `tenant B publish lag p99, ${B_EVENTS} events × ${ctx.runs} runs, behind ${SLOW_TENANTS} tenants × ${SLOW_SUBSCRIPTIONS} subscriptions answering after the delivery timeout`,
    p99,
    `p50 ${round(percentile(lags, 50), 1)} ms; the slow subscribers held ${held} requests (the relay's slow lane)`,
  ));
}

/** B's events, one transaction each through enqueueEvent at B_RATE_PER_SECOND; resolves with their lags once all are recorded delivered. */
async function publishB(pool: Pool, b: Party): Promise<number[]> {
  const ids: string[] = [];
  for (let i = 0; i < B_EVENTS; i++) {
    const aggregateId = randomUUID();
    const eventId = `${aggregateId}:operation.succeeded`;
    ids.push(eventId);
    await withTransaction(pool, (tx) => enqueueEvent(tx, { eventId, tenantId: b.tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } }));
    await sleep(1000 / B_RATE_PER_SECOND);
  }
  await until(
    async () => (await pool.query("SELECT 1 FROM deliveries WHERE subscription_id = $1 AND event_id = ANY($2) AND status <> 'delivered' LIMIT 1", [b.subscriptionId, ids])).rowCount === 0,
    "B's events delivered",
    120_000,
    20,
  );
  const { rows } = await pool.query<{ lag_ms: number }>(
    `SELECT (extract(epoch FROM (d.delivered_at - o.created_at)) * 1000)::float8 AS lag_ms
       FROM deliveries d JOIN outbox_events o ON o.event_id = d.event_id
      WHERE d.subscription_id = $1 AND d.event_id = ANY($2)`,
    [b.subscriptionId, ids],
  );
  return rows.map((r) => Number(r.lag_ms));
}

/** A row of tenant B's p99 publish lag against the target (under 1 s). */
function lagFigure(metric: string, p99: number, note: string): Figure {
  return {
    benchmark: '7 fairness', metric, unit: 'ms',
    onceflow: round(p99, 1), reference: 1000, ratio: round(p99 / 1000),
    target: 'p99 < 1000 ms', met: p99 < 1000, referenceName: 'target', note,
  };
}
