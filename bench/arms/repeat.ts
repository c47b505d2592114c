/**
 * 1. Repeat path: replays of a finished operation through the facade against
 * a bare Fastify endpoint doing one primary-key read from the same PostgreSQL.
 * The facade answers them from its cache of finished operations (the
 * default); a second api process with the cache off runs in the same pairs,
 * so the table also shows the path that reads PostgreSQL each time.
 */
import { findFreePort } from '../../dev/ports';
import type { BenchContext } from '../lib/context';
import { cpuPerOperation, snapshotCpu, type CpuGroup } from '../lib/cpu';
import { AUTH, postOperation } from '../lib/facade';
import { runAutocannon, type LoadResult } from '../lib/load';
import { roleEnv, startRole, startScript, waitForHttp } from '../lib/stack';
import { median, pairedRatio, pairSpread, ratio, round } from '../lib/stats';

const CONNECTIONS = 16;

export async function repeatPath(ctx: BenchContext): Promise<void> {
  const key = 'bench-repeat-0001';
  const body = JSON.stringify({ prompt: 'benchmark: the repeat path' });
  const first = await postOperation(ctx.apiUrl, key, JSON.parse(body), { waitSeconds: 30 });
  if (first.status !== 200) throw new Error(`seeding the repeated operation answered ${first.status}: ${JSON.stringify(first.body)}`);

  const port = await findFreePort();
  const bare = startScript('bare-read', 'bench/servers/bare-read.ts', [ctx.infra.databaseUrl, String(port), '10']);
  ctx.processes['bare-read'] = bare;
  await bare.waitFor(/bare-read listening/);
  const bareUrl = `http://127.0.0.1:${port}/ops/bench/generate-content/${key}`;
  await waitForHttp(bareUrl);

  const uncachedPort = await findFreePort();
  const uncachedApi = startRole('api', await roleEnv({ infra: ctx.infra, taskQueue: 'onceflow', extra: { PORT: String(uncachedPort), ONCEFLOW_FINISHED_CACHE_MB: '0' } }));
  ctx.processes['api-uncached'] = uncachedApi;
  const uncachedUrl = `http://127.0.0.1:${uncachedPort}`;
  await waitForHttp(`${uncachedUrl}/readyz`, 90_000, uncachedApi);

  const replays = (apiUrl: string, durationSeconds: number) =>
    runAutocannon({
      url: `${apiUrl}/v1/operations/generate-content`,
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json', 'idempotency-key': key },
      body,
      connections: CONNECTIONS,
      durationSeconds,
    });
  const arms = {
    facade: () => replays(ctx.apiUrl, ctx.pairSeconds),
    uncached: () => replays(uncachedUrl, ctx.pairSeconds),
    bare: () => runAutocannon({ url: bareUrl, connections: CONNECTIONS, durationSeconds: ctx.pairSeconds }),
  };

  // Warm-up of each (JIT, pools, caches), then rotate the order per run.
  ctx.log('  repeat path: warm-up');
  await runAutocannon({ url: bareUrl, connections: CONNECTIONS, durationSeconds: 2 });
  await replays(ctx.apiUrl, 2);
  await replays(uncachedUrl, 2);
  const facadeRuns: LoadResult[] = [];
  const uncachedRuns: LoadResult[] = [];
  const bareRuns: LoadResult[] = [];
  // CPU per request of the serving process (the api, or the bare server) and
  // of the rest, from /proc: unlike req/s it barely moves with the host's
  // load, so it is what a change to the repeat path is judged by. PostgreSQL:
  // this run's own backends (snapshotCpu counts the harness's descendants only).
  const postgres: CpuGroup = { name: 'postgres', comm: 'postgres' };
  const serving = (pid: () => number): CpuGroup[] => [{ name: 'server', pids: () => [pid()] }, { name: 'harness', pids: () => [process.pid] }, postgres];
  const servingCpu = { facade: serving(() => ctx.processes.api!.pid), uncached: serving(() => uncachedApi.pid), bare: serving(() => bare.pid) };
  const cpuRuns = { facade: [] as Record<string, number>[], uncached: [] as Record<string, number>[], bare: [] as Record<string, number>[] };
  const runsOf = { facade: facadeRuns, uncached: uncachedRuns, bare: bareRuns };
  const rotation = ['facade', 'bare', 'uncached'] as const;
  const stopSampling = ctx.memory.underLoad();
  for (let run = 0; run < ctx.pairs; run++) {
    const order = rotation.map((_, i) => rotation[(i + run) % rotation.length]!);
    for (const arm of order) {
      const before = snapshotCpu(servingCpu[arm]);
      const result = await arms[arm]();
      const perRequest = cpuPerOperation(before, snapshotCpu(servingCpu[arm]), result.ok + result.failed);
      cpuRuns[arm].push(perRequest);
      runsOf[arm].push(result);
      ctx.log(`  repeat path run ${run + 1}/${ctx.pairs} ${arm}: ${round(result.throughput, 0)} req/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, CPU ms/request ${cpuNote(perRequest)}, outcomes ${JSON.stringify(result.outcomes)}`);
    }
  }
  stopSampling();
  await bare.stop();
  await uncachedApi.stop();
  delete ctx.processes['bare-read'];
  delete ctx.processes['api-uncached'];

  const wrongAnswers = [...facadeRuns, ...uncachedRuns].reduce((sum, r) => sum + r.failed, 0);
  const tput = median(facadeRuns.map((r) => r.throughput));
  const refTput = median(bareRuns.map((r) => r.throughput));
  const r = pairedRatio(facadeRuns.map((x) => x.throughput), bareRuns.map((x) => x.throughput));
  // The median run, group by group: a run the host starved (few requests per
  // wake-up, so more CPU per request) moves a mean far more than a median.
  const medianCpu = (runs: Record<string, number>[]) => Object.fromEntries(Object.keys(runs[0] ?? {}).map((group) => [group, median(runs.map((r) => r[group]!))]));
  const facadeCpu = medianCpu(cpuRuns.facade);
  const uncachedCpu = medianCpu(cpuRuns.uncached);
  const bareCpu = medianCpu(cpuRuns.bare);
  const uncachedRatio = pairedRatio(uncachedRuns.map((x) => x.throughput), bareRuns.map((x) => x.throughput));
  ctx.raw.repeatPath = { connections: CONNECTIONS, facadeRuns, uncachedRuns, bareRuns, wrongAnswers, cpuMsPerRequest: { facade: facadeCpu, uncached: uncachedCpu, bare: bareCpu } };
  ctx.figures.push(
    { benchmark: '1 repeat path', metric: 'throughput', unit: 'req/s', onceflow: round(tput, 0), reference: round(refTput, 0), ratio: round(r), target: '≥ 0.8', met: r >= 0.8, referenceName: 'bare Fastify + 1 PK read', note: `default configuration: repeats answered from the finished-operations cache; ratio: median of ${ctx.pairs} paired runs (${pairSpread(facadeRuns.map((x) => x.throughput), bareRuns.map((x) => x.throughput))})${wrongAnswers ? `; ${wrongAnswers} non-200 answers` : ''}` },
    { benchmark: '1 repeat path', metric: 'throughput, finished-operations cache off', unit: 'req/s', onceflow: round(median(uncachedRuns.map((x) => x.throughput)), 0), reference: round(refTput, 0), ratio: round(uncachedRatio), target: '', referenceName: 'bare Fastify + 1 PK read', note: `a second api with ONCEFLOW_FINISHED_CACHE_MB=0 (one PostgreSQL read per repeat), in the same runs (${pairSpread(uncachedRuns.map((x) => x.throughput), bareRuns.map((x) => x.throughput))}); api CPU per request ${round(uncachedCpu.server ?? Number.NaN, 3)} ms, postgres ${round(uncachedCpu.postgres ?? Number.NaN, 3)} ms` },
    { benchmark: '1 repeat path', metric: 'latency p50', unit: 'ms', onceflow: median(facadeRuns.map((x) => x.p50Ms)), reference: median(bareRuns.map((x) => x.p50Ms)), ratio: round(ratio(median(facadeRuns.map((x) => x.p50Ms)), median(bareRuns.map((x) => x.p50Ms)))), target: '', referenceName: 'bare Fastify + 1 PK read' },
    { benchmark: '1 repeat path', metric: 'CPU per request, serving process', unit: 'ms', onceflow: round(facadeCpu.server ?? Number.NaN, 3), reference: round(bareCpu.server ?? Number.NaN, 3), ratio: round(ratio(facadeCpu.server ?? Number.NaN, bareCpu.server ?? Number.NaN)), target: '', referenceName: 'bare Fastify + 1 PK read', note: `api vs bare server, median of the runs; facade: ${cpuNote(facadeCpu)}; reference: ${cpuNote(bareCpu)}` },
    { benchmark: '1 repeat path', metric: 'latency p99', unit: 'ms', onceflow: median(facadeRuns.map((x) => x.p99Ms)), reference: median(bareRuns.map((x) => x.p99Ms)), ratio: round(ratio(median(facadeRuns.map((x) => x.p99Ms)), median(bareRuns.map((x) => x.p99Ms)))), target: '', referenceName: 'bare Fastify + 1 PK read' },
  );
}

function cpuNote(perRequest: Record<string, number>): string {
  return Object.entries(perRequest).map(([group, ms]) => `${group} ${round(ms, 3)}`).join(', ');
}
