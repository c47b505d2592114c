/**
 * 6. New work against Temporal itself: the facade (`Prefer: wait`, so one
 * request is one completed generate-content: reserve, start, paid call with
 * its guard, bill, outbox event, answer) against a bare Temporal workflow with
 * one activity that calls the same offline Gemini server through
 * @google/genai, started with `client.workflow.start` and awaited with
 * `result()`. Same dev server; the reference's worker runs in this process
 * with Worker.create's defaults, as the Onceflow worker does (no cache or
 * poller settings of its own). Measured in alternating order:
 *  a) one operation on an idle stack: 100 sequential requests per arm, p50;
 *  b) completed operations per second, 16 concurrent clients, in alternating
 *     pairs of runs (ratio: the median of the pair ratios).
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { BenchContext } from '../lib/context';
import { cpuPerOperation, snapshotCpu, type CpuGroup } from '../lib/cpu';
import { postOperation } from '../lib/facade';
import { runClosedLoop, type LoadResult } from '../lib/load';
import { median, pairedRatio, pairSpread, percentile, ratio, round } from '../lib/stats';
import { createBareActivities } from './one-activity/activities';

const SEQUENTIAL = 100;
const CONCURRENCY = 16;
const ARMS = ['facade', 'bare'] as const;
type Arm = (typeof ARMS)[number];

export async function oneActivity(ctx: BenchContext): Promise<void> {
  const taskQueue = `bench-one-activity-${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect({ address: ctx.infra.temporal.address });
  const client = new Client({ connection, namespace: ctx.infra.temporal.namespace });
  const worker = await Worker.create({
    connection,
    namespace: ctx.infra.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('./one-activity/workflow'),
    activities: createBareActivities(ctx.geminiUrl),
  });
  const running = worker.run();
  let seq = 0;
  const ops: Record<Arm, () => Promise<void>> = {
    facade: async () => {
      const key = `one-f-${seq++}-${randomUUID().slice(0, 8)}`;
      const answer = await postOperation(ctx.apiUrl, key, { prompt: `one ${key}` }, { waitSeconds: 30 });
      if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
    },
    bare: async () => {
      const key = `one-b-${seq++}-${randomUUID().slice(0, 8)}`;
      const handle = await client.workflow.start('bareGeminiWorkflow', { workflowId: key, taskQueue, args: [`one ${key}`] });
      await handle.result();
    },
  };
  try {
    ctx.log('  one activity: warm-up of both arms');
    for (const arm of ARMS) await runClosedLoop({ concurrency: 1, total: 20, op: ops[arm] });
    for (const arm of ARMS) await runClosedLoop({ concurrency: CONCURRENCY, durationMs: 2_000, op: ops[arm] });
    // Tables in service have statistics. Run alone (--only), this arm starts on
    // a new database that autovacuum first analyzes a minute in, and until then
    // the planner may read a key through the tenant's listing index (every row
    // of the tenant) instead of the primary key. A full run's earlier arms have
    // given it statistics by now.
    await ctx.infra.pool.query('ANALYZE');

    // a) idle: sequential, in two halves per arm in alternating order (facade, bare, bare, facade).
    const sequential: Record<Arm, number[]> = { facade: [], bare: [] };
    for (const order of [ARMS, [...ARMS].reverse()]) {
      for (const arm of order) {
        const result = await runClosedLoop({ concurrency: 1, total: SEQUENTIAL / 2, op: ops[arm] });
        if (result.failed > 0) throw new Error(`${arm}: ${result.failed} sequential operations failed: ${JSON.stringify(result.outcomes)}`);
        sequential[arm].push(...result.latenciesMs);
      }
    }
    const p50 = (arm: Arm) => percentile(sequential[arm], 50);
    const p99 = (arm: Arm) => percentile(sequential[arm], 99);
    ctx.log(`  one activity idle: facade p50 ${round(p50('facade'), 1)} ms (min ${round(Math.min(...sequential.facade), 1)}), bare p50 ${round(p50('bare'), 1)} ms (min ${round(Math.min(...sequential.bare), 1)})`);

    // b) throughput under load, alternating order per run. On two saturated
    // cores throughput is CPU divided by CPU per operation, so each run also
    // records who spent it (the bare arm's worker is in the harness).
    const cpuGroups: CpuGroup[] = [
      { name: 'harness', pids: () => [process.pid] },
      ...(['api', 'worker', 'relay', 'gemini-offline'] as const).map((name) => ({ name, pids: () => [ctx.processes[name]!.pid] })),
      ctx.infra.cluster
        ? { name: 'temporal', pids: () => Object.values(ctx.infra.cluster!.services).flatMap((s) => s.pid() ?? []) }
        : { name: 'temporal', comm: 'temporal' },
      { name: 'postgres', comm: 'postgres' },
    ];
    const cpuMs: Record<Arm, Map<string, number>> = { facade: new Map(), bare: new Map() };
    const completed: Record<Arm, number> = { facade: 0, bare: 0 };
    const loaded: Record<Arm, LoadResult[]> = { facade: [], bare: [] };
    const stopSampling = ctx.memory.underLoad();
    // Pairs, as the repeat and starts arms: each facade run is compared with
    // the bare run next to it, so the host's drift (CPU steal moved single
    // runs by up to 2.4x within a minute) falls on both sides of each ratio.
    for (let run = 0; run < ctx.pairs; run++) {
      for (const arm of run % 2 === 0 ? ARMS : [...ARMS].reverse()) {
        const before = snapshotCpu(cpuGroups);
        const result = await runClosedLoop({ concurrency: CONCURRENCY, durationMs: ctx.seconds * 1000, op: ops[arm] });
        for (const [group, ms] of Object.entries(cpuPerOperation(before, snapshotCpu(cpuGroups), 1))) cpuMs[arm].set(group, (cpuMs[arm].get(group) ?? 0) + ms);
        completed[arm] += result.ok;
        const { latenciesMs: _l, ...rest } = result;
        loaded[arm].push(rest);
        ctx.log(`  one activity ${arm} pair ${run + 1}/${ctx.pairs}: ${round(result.throughput, 1)} ops/s, p50 ${round(result.p50Ms, 0)} ms, p99 ${round(result.p99Ms, 0)} ms, failed ${result.failed}`);
      }
    }
    stopSampling();
    const throughputs = (arm: Arm) => loaded[arm].map((r) => r.throughput);
    const throughput = (arm: Arm) => median(throughputs(arm));
    const pairedThroughput = pairedRatio(throughputs('facade'), throughputs('bare'));
    const cpu = Object.fromEntries(ARMS.map((arm) => [arm, Object.fromEntries([...cpuMs[arm]].map(([group, ms]) => [group, round(ms / completed[arm], 2)]))])) as Record<Arm, Record<string, number>>;
    const cpuTotal = (arm: Arm) => round(Object.values(cpu[arm]).reduce((a, b) => a + b, 0), 2);
    const cpuNote = (arm: Arm) => Object.entries(cpu[arm]).filter(([, ms]) => ms >= 0.01).map(([group, ms]) => `${group} ${ms}`).join(', ');
    ctx.log(`  one activity CPU per completed operation (ms): ${ARMS.map((arm) => `${arm}: ${cpuNote(arm)}`).join('; ')}`);
    ctx.raw.oneActivity = {
      sequential: Object.fromEntries(ARMS.map((arm) => [arm, { p50Ms: round(p50(arm), 1), p99Ms: round(p99(arm), 1), minMs: round(Math.min(...sequential[arm]), 1) }])),
      loaded,
      cpuMsPerOperation: cpu,
      concurrency: CONCURRENCY,
    };
    const referenceName = 'bare workflow, one activity (@google/genai), start + result()';
    ctx.figures.push(
      {
        benchmark: '6 new work vs Temporal', metric: `one operation on an idle stack, p50 of ${SEQUENTIAL} sequential`, unit: 'ms',
        onceflow: round(p50('facade'), 1), reference: round(p50('bare'), 1), ratio: round(ratio(p50('facade'), p50('bare'))),
        target: '≤ 1.3', met: ratio(p50('facade'), p50('bare')) <= 1.3, referenceName,
        note: `p99 ${round(p99('facade'), 0)} vs ${round(p99('bare'), 0)} ms`,
      },
      {
        benchmark: '6 new work vs Temporal', metric: `completed operations, ${CONCURRENCY} concurrent (facade with Prefer: wait)`, unit: 'ops/s',
        onceflow: round(throughput('facade'), 1), reference: round(throughput('bare'), 1), ratio: round(pairedThroughput),
        target: '≥ 0.8', met: pairedThroughput >= 0.8, referenceName,
        note: `ratio: median of ${ctx.pairs} paired runs of ${ctx.seconds} s (${pairSpread(throughputs('facade'), throughputs('bare'))}); ratio of the medians ${round(ratio(throughput('facade'), throughput('bare')))}`,
      },
      {
        benchmark: '6 new work vs Temporal', metric: `CPU per completed operation, all processes`, unit: 'ms',
        onceflow: cpuTotal('facade'), reference: cpuTotal('bare'), ratio: round(ratio(cpuTotal('facade'), cpuTotal('bare'))), target: '', referenceName,
        note: `facade: ${cpuNote('facade')}; reference: ${cpuNote('bare')}`,
      },
    );
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
  }
}
