/**
 * 4. Peer: the same idempotent one-step operation (one Gemini call, then the
 * business row and the outbox row in one transaction) on DBOS Transact against
 * the same PostgreSQL server, sent the same keys with the same duplicates as
 * Onceflow. Both arms are reported as measured.
 */
import { randomUUID } from 'node:crypto';
import { findFreePort } from '../../dev/ports';
import type { BenchContext } from '../lib/context';
import { postOperation } from '../lib/facade';
import { runClosedLoop, type LoadResult } from '../lib/load';
import { startScript } from '../lib/stack';
import { median, ratio, round, until } from '../lib/stats';

const KEYS_PER_RUN = 200;
const CONCURRENCY = 16;

/** Every key twice; the duplicate lands at a random later position. */
function keyPlan(prefix: string): string[] {
  const keys = Array.from({ length: KEYS_PER_RUN }, (_, i) => `${prefix}-${i}`);
  const plan = [...keys];
  for (const key of keys) {
    const first = plan.indexOf(key);
    const at = first + 1 + Math.floor(Math.random() * (plan.length - first));
    plan.splice(at, 0, key);
  }
  return plan;
}

interface PeerRun {
  requests: LoadResult;
  completedPerSecond: number;
  businessRows: number;
  outboxRows: number;
}

export async function peer(ctx: BenchContext): Promise<void> {
  const pool = ctx.infra.pool;
  const systemDb = 'onceflow_dbos_sys';
  await pool.query(`CREATE DATABASE ${systemDb}`).catch(() => undefined);
  const systemDatabaseUrl = ctx.infra.databaseUrl.replace(/\/[^/]+$/, `/${systemDb}`);
  const port = await findFreePort();
  const dbos = startScript('dbos-peer', 'bench/servers/dbos-peer.ts', [ctx.infra.databaseUrl, systemDatabaseUrl, String(port), ctx.geminiUrl]);
  ctx.processes['dbos-peer'] = dbos;
  ctx.memory.watch('dbos-peer', dbos);
  await dbos.waitFor(/dbos-peer listening/);
  await ctx.memory.sampleIdle(1000, ['dbos-peer']);
  const peerUrl = `http://127.0.0.1:${port}`;

  const onceflowRun = async (prefix: string): Promise<PeerRun> => {
    const plan = keyPlan(prefix);
    const t0 = performance.now();
    const requests = await runClosedLoop({
      concurrency: CONCURRENCY,
      total: plan.length,
      op: async (i) => {
        const key = plan[i]!;
        const answer = await postOperation(ctx.apiUrl, key, { prompt: `peer ${key}` });
        // 202 first request; a duplicate answers 409 (still running) or 200 (replayed).
        if (![200, 202, 409].includes(answer.status)) throw new Error(`HTTP ${answer.status}`);
      },
    });
    await until(
      async () => Number((await pool.query("SELECT count(*) FROM operations WHERE idempotency_key LIKE $1 AND status = 'succeeded'", [`${prefix}-%`])).rows[0].count) >= KEYS_PER_RUN,
      'every Onceflow operation succeeded', 300_000, 50,
    );
    const completedPerSecond = KEYS_PER_RUN / ((performance.now() - t0) / 1000);
    const { rows } = await pool.query(
      `SELECT (SELECT count(*) FROM operations o JOIN usage_ledger u USING (operation_id) WHERE o.idempotency_key LIKE $1)::int AS business,
              (SELECT count(*) FROM operations o JOIN outbox_events e ON e.aggregate_id = o.operation_id::text WHERE o.idempotency_key LIKE $1)::int AS outbox`,
      [`${prefix}-%`],
    );
    return { requests, completedPerSecond, businessRows: rows[0].business, outboxRows: rows[0].outbox };
  };

  const dbosRun = async (prefix: string): Promise<PeerRun> => {
    const plan = keyPlan(prefix);
    const t0 = performance.now();
    const requests = await runClosedLoop({
      concurrency: CONCURRENCY,
      total: plan.length,
      op: async (i) => {
        const key = plan[i]!;
        const response = await fetch(`${peerUrl}/peer/ops`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ prompt: `peer ${key}` }),
        });
        await response.text();
        if (response.status !== 202) throw new Error(`HTTP ${response.status}`);
      },
    });
    await until(
      async () => Number((await pool.query('SELECT count(*) FROM peer_operations WHERE idempotency_key LIKE $1', [`${prefix}-%`])).rows[0].count) >= KEYS_PER_RUN,
      'every DBOS workflow committed', 300_000, 50,
    );
    const completedPerSecond = KEYS_PER_RUN / ((performance.now() - t0) / 1000);
    const { rows } = await pool.query(
      `SELECT (SELECT count(*) FROM peer_operations WHERE idempotency_key LIKE $1)::int AS business,
              (SELECT count(*) FROM peer_outbox WHERE idempotency_key LIKE $1)::int AS outbox`,
      [`${prefix}-%`],
    );
    return { requests, completedPerSecond, businessRows: rows[0].business, outboxRows: rows[0].outbox };
  };

  ctx.log('  peer: warm-up of both arms');
  await onceflowRun(`peer-of-warm-${randomUUID().slice(0, 6)}`);
  await dbosRun(`peer-db-warm-${randomUUID().slice(0, 6)}`);
  const runs: Record<'onceflow' | 'dbos', PeerRun[]> = { onceflow: [], dbos: [] };
  const stopSampling = ctx.memory.underLoad();
  for (let run = 0; run < ctx.runs; run++) {
    for (const arm of run % 2 === 0 ? (['onceflow', 'dbos'] as const) : (['dbos', 'onceflow'] as const)) {
      const prefix = `peer-${arm}-${run}-${randomUUID().slice(0, 6)}`;
      const result = arm === 'onceflow' ? await onceflowRun(prefix) : await dbosRun(prefix);
      runs[arm].push(result);
      ctx.log(`  peer run ${run + 1}/${ctx.runs} ${arm}: ${round(result.requests.throughput, 0)} req/s accepted (p50 ${round(result.requests.p50Ms, 1)} ms, p99 ${round(result.requests.p99Ms, 1)} ms), ${round(result.completedPerSecond, 1)} completed/s, business rows ${result.businessRows}/${KEYS_PER_RUN}, outbox rows ${result.outboxRows}/${KEYS_PER_RUN}`);
    }
  }
  stopSampling();
  await dbos.stop();
  delete ctx.processes['dbos-peer'];

  const strip = (list: PeerRun[]) => list.map((r) => ({ ...r, requests: { ...r.requests, latenciesMs: undefined } }));
  ctx.raw.peer = { keysPerRun: KEYS_PER_RUN, requestsPerRun: KEYS_PER_RUN * 2, concurrency: CONCURRENCY, onceflow: strip(runs.onceflow), dbos: strip(runs.dbos) };
  const m = (arm: 'onceflow' | 'dbos', pick: (r: PeerRun) => number) => median(runs[arm].map(pick));
  const effects = (arm: 'onceflow' | 'dbos') =>
    runs[arm].every((r) => r.businessRows === KEYS_PER_RUN && r.outboxRows === KEYS_PER_RUN) ? 'one business row + one outbox row per key' : 'EFFECT COUNT WRONG';
  const row = (metric: string, unit: string, pick: (r: PeerRun) => number, digits = 1) => ({
    benchmark: '4 peer (DBOS)', metric, unit, onceflow: round(m('onceflow', pick), digits), reference: round(m('dbos', pick), digits),
    ratio: round(ratio(m('onceflow', pick), m('dbos', pick))), target: '', referenceName: 'DBOS Transact, workflow ID = key',
  });
  ctx.figures.push(
    { ...row('requests answered (keys + duplicates)', 'req/s', (r) => r.requests.throughput, 0), note: `Onceflow: ${effects('onceflow')}; DBOS: ${effects('dbos')}` },
    row('request latency p50', 'ms', (r) => r.requests.p50Ms),
    row('request latency p99', 'ms', (r) => r.requests.p99Ms),
    row('operations completed', 'ops/s', (r) => r.completedPerSecond),
  );
}
