/**
 * 3. Outbox: events delivered per second by one and by three relay processes
 * to a local subscriber, against raw single-row INSERT throughput into the
 * same table; publish lag p50/p99 at a steady write rate.
 *
 * Two subscribers, each a process of its own (so neither the harness's CPU nor
 * the subscriber's counts against the relay, except that all share the
 * machine): the verifying subscriber (examples/consumer/verify-only.ts: checks
 * the Standard Webhooks signature, answers 200) is what the figure
 * measures; the example consumer (examples/consumer/main.ts: signature check
 * plus an inbox transaction per event) is the additional row a user with an
 * exactly-once consumer would see.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Pool } from '../../src/db/pool';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent, OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import { createSubscription } from '../../src/outbox/subscriptions';
import type { BenchContext } from '../lib/context';
import { cpuPerOperation, snapshotCpu, type CpuGroup } from '../lib/cpu';
import { runClosedLoop } from '../lib/load';
import { ROOT, roleEnv, startRole, waitForHttp, type ManagedProcess } from '../lib/stack';
import { median, ratio, round, sleep, until } from '../lib/stats';

const RAW_CONCURRENCY = 8;
const LAG_RATE_PER_SECOND = 100;

interface Subscriber {
  key: 'verify' | 'inbox';
  /** For the table. */
  label: string;
  tenantId: string;
  subscriptionId: string;
  process: { pid: number; stop(): Promise<void>; alive(): boolean; output(): string };
  /** Deliveries the subscriber itself saw (duplicates included) and distinct webhook-ids, for the report. */
  counts(): Promise<{ received: number; distinct: number }>;
}

/** Runs one of the example subscribers as its own process; resolves with its URL once it listens. */
export async function startSubscriberProcess(file: string, env: Record<string, string>): Promise<{ url: string; process: Subscriber['process'] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => reject(new Error(`${file} exited:\n${output}`)));
  });
  return {
    url,
    process: {
      pid: child.pid!,
      alive,
      output: () => output,
      stop: async () => {
        if (!alive()) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      },
    },
  };
}

export async function outbox(ctx: BenchContext): Promise<void> {
  const pool = createPool({ connectionString: ctx.infra.databaseUrl, max: 10, applicationName: 'onceflow-bench-outbox' });
  const runId = randomUUID().slice(0, 6);
  const rawTenant = `bench-outbox-${runId}-raw`;
  await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [rawTenant]);
  const subscribers: Subscriber[] = [];
  const relays: ManagedProcess[] = [];
  /** Events per delivery run: enough that a run lasts seconds at the rates seen. */
  const eventsPerRun = 1000 * ctx.seconds;
  try {
    subscribers.push(await verifyingSubscriber(pool, runId), await inboxSubscriber(pool, runId, ctx.infra.databaseUrl));

    // Raw: single-row INSERTs into outbox_events, each its own transaction, for a tenant with no subscribers.
    ctx.log('  outbox: raw INSERT throughput');
    const rawInsert = (durationMs: number) =>
      runClosedLoop({
        concurrency: RAW_CONCURRENCY,
        durationMs,
        op: async () => {
          const id = randomUUID();
          await pool.query('INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload) VALUES ($1, $2, $3, $4, $5)', [
            `${id}:raw`, rawTenant, id, 'operation.succeeded', '{"operationId":"x"}',
          ]);
        },
      });
    await rawInsert(1000);
    const rawRuns: number[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      const result = await rawInsert(ctx.seconds * 1000);
      rawRuns.push(result.throughput);
      ctx.log(`  raw INSERT run ${run + 1}/${ctx.runs}: ${round(result.throughput, 0)} rows/s`);
    }
    const raw = median(rawRuns);

    // Relay 1 is the run's own relay process (started with the stack); 2 and 3 join for the second configuration.
    const startRelay = async (n: number) => {
      const env = await roleEnv({ infra: ctx.infra, taskQueue: 'onceflow' });
      const relay = startRole('relay', env);
      relays.push(relay);
      ctx.processes[`relay-${n}`] = relay;
      await waitForHttp(`http://127.0.0.1:${env.RELAY_METRICS_PORT}/metrics`, 90_000, relay);
    };

    const results: Record<string, { delivered: number[]; lag: { p50Ms: number; p99Ms: number; events: number }; cpuNote: string }> = {};
    for (const relayCount of [1, 3]) {
      while (relays.length + 1 < relayCount) await startRelay(relays.length + 2);
      for (const subscriber of subscribers) {
        const name = `${relayCount} relay(s) → ${subscriber.label}`;
        ctx.log(`  outbox: ${name}, warm-up`);
        await deliveryRun(pool, subscriber, eventsPerRun);
        const delivered: number[] = [];
        // Where a delivered event's CPU goes, summed over the measured runs.
        const cpuGroups: CpuGroup[] = [
          { name: 'relays', pids: () => [ctx.processes.relay!.pid, ...relays.map((r) => r.pid)] },
          { name: 'subscriber', pids: () => [subscriber.process.pid] },
          { name: 'postgres', comm: 'postgres' },
          { name: 'harness', pids: () => [process.pid] },
        ];
        const cpuBefore = snapshotCpu(cpuGroups);
        const stopSampling = ctx.memory.underLoad();
        for (let run = 0; run < ctx.runs; run++) {
          const rate = await deliveryRun(pool, subscriber, eventsPerRun);
          delivered.push(rate);
          ctx.log(`  outbox ${name} run ${run + 1}/${ctx.runs}: ${round(rate, 0)} events/s delivered`);
        }
        const cpuPerEvent = cpuPerOperation(cpuBefore, snapshotCpu(cpuGroups), eventsPerRun * ctx.runs);
        const cpuNote = Object.entries(cpuPerEvent).map(([group, ms]) => `${group} ${round(ms, 3)}`).join(', ');
        ctx.log(`  outbox ${name}: CPU per event (ms): ${cpuNote}`);
        const lag = await lagRun(pool, subscriber, ctx.seconds * 1000);
        stopSampling();
        ctx.log(`  outbox ${name}: publish lag at ${LAG_RATE_PER_SECOND}/s p50 ${round(lag.p50Ms, 1)} ms, p99 ${round(lag.p99Ms, 1)} ms`);
        results[`${relayCount}:${subscriber.key}`] = { delivered, lag, cpuNote };
      }
    }

    const counts = Object.fromEntries(await Promise.all(subscribers.map(async (s) => [s.key, await s.counts()] as const)));
    ctx.raw.outbox = { rawRuns, eventsPerRun, results, subscriberCounts: counts, load: 'see the load average printed with the table' };
    for (const relayCount of [1, 3]) {
      const relays = `${relayCount} relay${relayCount > 1 ? 's' : ''}`;
      for (const subscriber of subscribers) {
        const { delivered, cpuNote } = results[`${relayCount}:${subscriber.key}`]!;
        const rate = median(delivered);
        const r = ratio(rate, raw);
        const primary = subscriber.key === 'verify';
        ctx.figures.push({
          benchmark: '3 outbox',
          metric: `delivered, ${relays}, ${subscriber.label}`,
          unit: 'events/s',
          onceflow: round(rate, 0),
          reference: round(raw, 0),
          ratio: round(r),
          target: primary ? '≥ 0.5' : '',
          met: primary ? r >= 0.5 : undefined,
          referenceName: `raw single-row INSERT (${RAW_CONCURRENCY} connections)`,
          note: `${primary ? '' : 'the subscriber commits an inbox transaction per event; '}CPU ms per event: ${cpuNote}`,
        });
      }
      for (const subscriber of subscribers) {
        const { lag } = results[`${relayCount}:${subscriber.key}`]!;
        ctx.figures.push({
          benchmark: '3 outbox',
          metric: `publish lag p99, ${relays}, ${subscriber.label}, ${LAG_RATE_PER_SECOND} events/s`,
          unit: 'ms',
          onceflow: round(lag.p99Ms, 1),
          reference: 1000,
          ratio: round(lag.p99Ms / 1000),
          target: 'p99 < 1000 ms',
          met: lag.p99Ms < 1000,
          referenceName: 'target',
          note: `p50 ${round(lag.p50Ms, 1)} ms`,
        });
      }
    }
    // How many updates of delivery rows (claims and outcomes) were HOT: a claim can be, an outcome cannot (status is in the indexes' predicates).
    const hot = (await pool.query<{ updates: string; hot: string }>("SELECT n_tup_upd AS updates, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'deliveries'")).rows[0];
    if (hot) ctx.log(`  outbox: delivery row updates ${hot.updates}, of which HOT ${hot.hot}`);
    const duplicates = Object.entries(counts).map(([key, c]) => `${key}: ${c.received - c.distinct}`).join(', ');
    ctx.log(`  outbox: redeliveries seen by the subscribers (expected 0 without crashes): ${duplicates}`);
  } finally {
    for (const relay of relays) await relay.stop();
    for (const name of Object.keys(ctx.processes)) if (name.startsWith('relay-')) delete ctx.processes[name];
    for (const subscriber of subscribers) await subscriber.process.stop();
    await pool.end();
  }
}

/** A tenant and its subscription, made before the subscriber process starts (it needs the secret); the URL is set once it listens. */
export async function subscribe(pool: Pool, tenantId: string, options: { existingTenant?: boolean } = {}): Promise<{ subscriptionId: string; secret: string }> {
  if (!options.existingTenant) await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
  const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
  return { subscriptionId: subscription.id, secret: subscription.secret };
}

async function verifyingSubscriber(pool: Pool, runId: string): Promise<Subscriber> {
  const tenantId = `bench-outbox-${runId}-verify`;
  const { subscriptionId, secret } = await subscribe(pool, tenantId);
  const { url, process } = await startSubscriberProcess('examples/consumer/verify-only.ts', { WEBHOOK_SECRET: secret });
  await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [url, subscriptionId]);
  const stats = new URL('/stats', url).toString();
  return {
    key: 'verify',
    label: 'verifying subscriber',
    tenantId,
    subscriptionId,
    process,
    counts: async () => (await (await fetch(stats)).json()) as { received: number; distinct: number },
  };
}

async function inboxSubscriber(pool: Pool, runId: string, databaseUrl: string): Promise<Subscriber> {
  const tenantId = `bench-outbox-${runId}-inbox`;
  const consumer = `bench-${runId}`;
  const { subscriptionId, secret } = await subscribe(pool, tenantId);
  const { url, process } = await startSubscriberProcess('examples/consumer/main.ts', {
    WEBHOOK_SECRET: secret,
    DATABASE_URL: databaseUrl,
    INBOX_CONSUMER: consumer,
    DATABASE_POOL_SIZE: '10',
  });
  await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [url, subscriptionId]);
  return {
    key: 'inbox',
    label: 'example consumer with inbox',
    tenantId,
    subscriptionId,
    process,
    // Every accepted delivery is an inbox row; an effect row per distinct event.
    counts: async () => {
      const { rows } = await pool.query<{ distinct: number }>('SELECT count(*)::int AS distinct FROM example_consumer_effects WHERE consumer = $1', [consumer]);
      return { received: rows[0]!.distinct, distinct: rows[0]!.distinct };
    },
  };
}

/** Whether the subscription has a delivery not yet recorded delivered; stops at the first one instead of counting them all. */
async function anyUndelivered(pool: Pool, subscriptionId: string): Promise<boolean> {
  const { rowCount } = await pool.query("SELECT 1 FROM deliveries WHERE subscription_id = $1 AND status <> 'delivered' LIMIT 1", [subscriptionId]);
  return (rowCount ?? 0) > 0;
}

/**
 * Writes `events` events (one operation each, as in production) for the
 * subscriber while its subscription is paused, then releases them all at once
 * by resuming it (one row, and a NOTIFY), and times until the relays have
 * recorded every one as delivered (the subscriber answered 2xx and the relay
 * wrote it down). Written by one set-based statement, not enqueueEvent per
 * event: the rows are the same (an outbox_events row and a deliveries row
 * each), and writing them is not what this measures. Nothing but the relays'
 * own statements and one cheap probe every 20 ms runs against PostgreSQL in
 * the timed window: an earlier version released the burst by updating every
 * delivery row and probed with count(*) over all of them, and both landed in
 * PostgreSQL's CPU per delivered event.
 */
async function deliveryRun(pool: Pool, subscriber: Subscriber, events: number): Promise<number> {
  await pool.query("UPDATE subscriptions SET status = 'disabled', disabled_reason = 'bench: held back' WHERE subscription_id = $1", [subscriber.subscriptionId]);
  await pool.query(
    `WITH e AS (
       INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
       SELECT a || ':operation.succeeded', $1, a, 'operation.succeeded', jsonb_build_object('operationId', a)
         FROM (SELECT gen_random_uuid()::text AS a FROM generate_series(1, $3)) ids
       RETURNING event_id, aggregate_id, seq)
     INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
     SELECT event_id, $2, aggregate_id, seq FROM e`,
    [subscriber.tenantId, subscriber.subscriptionId, events],
  );
  const t0 = performance.now();
  await pool.query("UPDATE subscriptions SET status = 'active', disabled_reason = NULL WHERE subscription_id = $1", [subscriber.subscriptionId]);
  await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'bench-release']);
  await until(async () => !(await anyUndelivered(pool, subscriber.subscriptionId)), `${events} events delivered to the ${subscriber.label}`, 300_000, 20);
  if (!subscriber.process.alive()) throw new Error(`${subscriber.label} exited:\n${subscriber.process.output()}`);
  return events / ((performance.now() - t0) / 1000);
}

/**
 * Events written one per transaction through enqueueEvent (its NOTIFY
 * included) at a steady rate; lag = the relay's recorded acknowledgement
 * (`delivered_at`) minus the event row's `created_at`, both by PostgreSQL's
 * clock: an upper bound on when the subscriber had it.
 */
async function lagRun(pool: Pool, subscriber: Subscriber, durationMs: number): Promise<{ p50Ms: number; p99Ms: number; events: number }> {
  const ids: string[] = [];
  const startedAt = performance.now();
  const writers: Promise<void>[] = [];
  for (let i = 0; performance.now() - startedAt < durationMs; i++) {
    const due = startedAt + (i * 1000) / LAG_RATE_PER_SECOND;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const aggregateId = randomUUID();
    const eventId = `${aggregateId}:operation.succeeded`;
    ids.push(eventId);
    writers.push(
      withTransaction(pool, (tx) =>
        enqueueEvent(tx, { eventId, tenantId: subscriber.tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } }),
      ).then(() => undefined),
    );
  }
  await Promise.all(writers);
  await until(
    async () => !(await anyUndelivered(pool, subscriber.subscriptionId)),
    'lag events delivered',
    120_000,
    20,
  );
  const { rows } = await pool.query<{ p50: number; p99: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99
       FROM (SELECT extract(epoch FROM (d.delivered_at - o.created_at)) * 1000 AS lag_ms
               FROM deliveries d JOIN outbox_events o ON o.event_id = d.event_id
              WHERE d.subscription_id = $1 AND d.event_id = ANY($2)) lags`,
    [subscriber.subscriptionId, ids],
  );
  return { p50Ms: Number(rows[0]!.p50), p99Ms: Number(rows[0]!.p99), events: ids.length };
}
