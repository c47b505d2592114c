/**
 * 3. Outbox: events delivered per second by one and by three relay processes
 * to a local subscriber (the example consumer, on its inbox), against raw
 * single-row INSERT throughput into the same table; publish lag p50/p99 at a
 * steady write rate.
 */
import { randomUUID } from 'node:crypto';
import { startExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { enqueueEvent, OUTBOX_CHANNEL } from '../../src/outbox/enqueue';
import { createSubscription } from '../../src/outbox/subscriptions';
import type { BenchContext } from '../lib/context';
import { runClosedLoop } from '../lib/load';
import { roleEnv, startRole, waitForHttp, type ManagedProcess } from '../lib/stack';
import { median, ratio, round, sleep, until } from '../lib/stats';

const RAW_CONCURRENCY = 8;
/** Events per delivery run; each is its own aggregate (one operation, one event), as in production. */
const EVENTS_PER_RUN = 2000;
const LAG_RATE_PER_SECOND = 100;

export async function outbox(ctx: BenchContext): Promise<void> {
  const pool = createPool({ connectionString: ctx.infra.databaseUrl, max: 10, applicationName: 'onceflow-bench-outbox' });
  const consumerPool = createPool({ connectionString: ctx.infra.databaseUrl, max: 10, applicationName: 'onceflow-bench-consumer' });
  const tenantId = `bench-outbox-${randomUUID().slice(0, 6)}`;
  await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1), ($2)', [tenantId, `${tenantId}-raw`]);
  const subscription = await createSubscription(pool, secretBoxFromConfig({}), { tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
  const consumerName = `bench-${randomUUID().slice(0, 6)}`;
  const consumer = await startExampleConsumer({ pool: consumerPool, secret: subscription.secret, consumer: consumerName });
  await pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscription.id]);
  const relays: ManagedProcess[] = [];
  try {
    // Raw: single-row INSERTs into outbox_events, each its own transaction, for a tenant with no subscribers.
    ctx.log('  outbox: raw INSERT throughput');
    const rawInsert = (durationMs: number) =>
      runClosedLoop({
        concurrency: RAW_CONCURRENCY,
        durationMs,
        op: async () => {
          const id = randomUUID();
          await pool.query('INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload) VALUES ($1, $2, $3, $4, $5)', [
            `${id}:raw`, `${tenantId}-raw`, id, 'operation.succeeded', '{"operationId":"x"}',
          ]);
        },
      });
    await rawInsert(1000);
    const rawRuns = [];
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

    const deliveredCount = () => new Set(consumer.received.map((r) => r.webhookId)).size;
    const deliveryRun = async (): Promise<number> => {
      const ids: string[] = [];
      // Written and held back (due in an hour), so the clock starts when all are released at once.
      for (let batch = 0; batch < EVENTS_PER_RUN / 200; batch++) {
        await withTransaction(pool, async (tx) => {
          const batchIds: string[] = [];
          for (let i = 0; i < 200; i++) {
            const aggregateId = randomUUID();
            const eventId = `${aggregateId}:operation.succeeded`;
            await enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } });
            batchIds.push(eventId);
          }
          await tx.query("UPDATE deliveries SET next_attempt_at = now() + interval '1 hour' WHERE event_id = ANY($1)", [batchIds]);
          ids.push(...batchIds);
        });
      }
      const before = deliveredCount();
      const t0 = performance.now();
      await pool.query("UPDATE deliveries SET next_attempt_at = now() WHERE event_id = ANY($1)", [ids]);
      await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'bench-release']);
      await until(() => deliveredCount() - before >= ids.length, `${ids.length} events delivered`, 300_000, 20);
      return ids.length / ((performance.now() - t0) / 1000);
    };
    const lagRun = async (): Promise<{ p50Ms: number; p99Ms: number; events: number }> => {
      const ids: string[] = [];
      const durationMs = ctx.seconds * 1000;
      const startedAt = performance.now();
      const writers: Promise<void>[] = [];
      for (let i = 0; performance.now() - startedAt < durationMs; i++) {
        const due = startedAt + (i * 1000) / LAG_RATE_PER_SECOND;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const aggregateId = randomUUID();
        const eventId = `${aggregateId}:operation.succeeded`;
        ids.push(eventId);
        writers.push(withTransaction(pool, (tx) => enqueueEvent(tx, { eventId, tenantId, aggregateId, eventType: 'operation.succeeded', payload: { operationId: aggregateId } })).then(() => undefined));
      }
      await Promise.all(writers);
      const wanted = new Set(ids);
      await until(() => consumer.received.filter((r) => wanted.has(r.webhookId)).length >= ids.length, 'lag events delivered', 120_000, 20);
      // Lag by PostgreSQL's clock: the event row's commit-time now() to the consumer's effect row.
      const { rows } = await pool.query<{ p50: number; p99: number }>(
        `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99
           FROM (SELECT extract(epoch FROM (e.applied_at - o.created_at)) * 1000 AS lag_ms
                   FROM example_consumer_effects e JOIN outbox_events o ON o.event_id = e.event_id
                  WHERE e.consumer = $1 AND e.event_id = ANY($2)) lags`,
        [consumerName, ids],
      );
      return { p50Ms: Number(rows[0]!.p50), p99Ms: Number(rows[0]!.p99), events: ids.length };
    };

    const results: Record<string, { delivered: number[]; lag?: { p50Ms: number; p99Ms: number; events: number } }> = {};
    for (const relayCount of [1, 3]) {
      while (relays.length + 1 < relayCount) await startRelay(relays.length + 2);
      ctx.log(`  outbox: ${relayCount} relay(s), warm-up`);
      await deliveryRun();
      const delivered: number[] = [];
      const stopSampling = ctx.memory.underLoad();
      for (let run = 0; run < ctx.runs; run++) {
        const rate = await deliveryRun();
        delivered.push(rate);
        ctx.log(`  outbox ${relayCount} relay(s) run ${run + 1}/${ctx.runs}: ${round(rate, 0)} events/s delivered`);
      }
      const lag = await lagRun();
      stopSampling();
      ctx.log(`  outbox ${relayCount} relay(s): publish lag at ${LAG_RATE_PER_SECOND}/s p50 ${round(lag.p50Ms, 1)} ms, p99 ${round(lag.p99Ms, 1)} ms`);
      results[relayCount] = { delivered, lag };
    }
    const received = consumer.received.length;
    const distinct = new Set(consumer.received.map((r) => r.webhookId)).size;
    ctx.raw.outbox = { rawRuns, results, consumerReceived: received, consumerDistinct: distinct, redeliveries: received - distinct };
    for (const relayCount of [1, 3]) {
      const rate = median(results[relayCount]!.delivered);
      const lag = results[relayCount]!.lag!;
      const r = ratio(rate, raw);
      ctx.figures.push(
        { benchmark: '3 outbox', metric: `delivered, ${relayCount} relay${relayCount > 1 ? 's' : ''}`, unit: 'events/s', onceflow: round(rate, 0), reference: round(raw, 0), ratio: round(r), target: '≥ 0.5', met: r >= 0.5, referenceName: `raw single-row INSERT (${RAW_CONCURRENCY} connections)` },
        { benchmark: '3 outbox', metric: `publish lag p50 / p99, ${relayCount} relay${relayCount > 1 ? 's' : ''}, ${LAG_RATE_PER_SECOND} events/s`, unit: 'ms', onceflow: round(lag.p99Ms, 1), reference: 1000, ratio: round(lag.p99Ms / 1000), target: 'p99 < 1000 ms', met: lag.p99Ms < 1000, referenceName: 'target', note: `p50 ${round(lag.p50Ms, 1)} ms` },
      );
    }
  } finally {
    for (const relay of relays) await relay.stop();
    for (const name of Object.keys(ctx.processes)) if (name.startsWith('relay-')) delete ctx.processes[name];
    await consumer.close();
    await consumerPool.end();
    await pool.end();
  }
}

