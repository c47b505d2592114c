/**
 * `npm run bench`: every benchmark of bench/README.md in one run on one
 * machine. Starts its own embedded PostgreSQL and Temporal dev server and
 * Onceflow's processes, measures each figure against its reference in the
 * same run (warm-up first, alternating order, median of the runs), then
 * writes bench/results/latest.json and the table in bench/README.md.
 *
 * Flags: --quick (1 run of 3 s per arm: checks the harness, not a result),
 *        --only repeat,starts,completed,outbox,fairness,peer,one-activity (a partial run writes
 *          latest.json only; the README's table is always one whole run)
 *        --runs N   --seconds S
 *        --pairs N --pair-seconds S (paired arms: repeat path and starts; default 9 × 3 s)
 *        --temporal cluster (the Temporal server on PostgreSQL, 4 shards, four service
 *        processes, instead of the dev server; writes bench/results/latest-cluster.json)
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findFreePort } from '../dev/ports';
import { fairness } from './arms/fairness';
import { oneActivity } from './arms/one-activity';
import { outbox } from './arms/outbox';
import { peer } from './arms/peer';
import { repeatPath } from './arms/repeat';
import { acceptedStarts, completedOperations } from './arms/starts';
import { createMemorySampler, type BenchContext, type Figure } from './lib/context';
import { TEMPORAL_SERVER_VERSION } from '../dev/temporal-cluster';
import { provisionBenchTenant, roleEnv, ROOT, startInfra, startRole, waitForHttp } from './lib/stack';
import { machineInfo, round, versions } from './lib/stats';
import { createLogger } from '../src/observability/logger';
import { loadWorkflowBundle } from '../src/worker/workflow-bundle';

// Fairness runs last: the backlogs it leaves behind (dropped, but tens of
// thousands of dead rows for autovacuum, and requests the relay still holds
// to stopped subscribers) cost the relay and PostgreSQL CPU for minutes, and
// an arm after it measured that too (both of its sides alike, but noisier).
const ARMS = { repeat: repeatPath, starts: acceptedStarts, completed: completedOperations, outbox, peer, 'one-activity': oneActivity, fairness } as const;
type ArmName = keyof typeof ARMS;

function parseArgs(argv: string[]) {
  const flag = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const only = flag('only')?.split(',').map((s) => s.trim()) as ArmName[] | undefined;
  for (const name of only ?? []) if (!(name in ARMS)) throw new Error(`unknown arm ${name}; known: ${Object.keys(ARMS).join(', ')}`);
  return {
    quick,
    partial: only !== undefined,
    runs: Number(flag('runs') ?? (quick ? 1 : 3)),
    seconds: Number(flag('seconds') ?? (quick ? 3 : 6)),
    pairs: Number(flag('pairs') ?? (quick ? 1 : 9)),
    pairSeconds: Number(flag('pair-seconds') ?? 3),
    arms: only ?? (Object.keys(ARMS) as ArmName[]),
    /** `--temporal cluster`: the Temporal server on PostgreSQL, 4 shards, four processes, instead of the dev server. */
    temporal: (flag('temporal') ?? 'dev') as 'dev' | 'cluster',
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const log = (line: string) => process.stdout.write(`[bench +${Math.round((Date.now() - startedAt) / 1000)}s] ${line}\n`);
  const machine = machineInfo();
  log(`machine: ${machine.nproc} cores, ${machine.memoryGiB} GiB, ${machine.cpuModel}; load average ${machine.loadAverageAtStart.join(' ')}`);
  if (machine.loadAverageAtStart[0]! > machine.nproc * 0.5) log(`WARNING: the machine is busy (load ${machine.loadAverageAtStart[0]}); figures will be noisy`);

  if (!['dev', 'cluster'].includes(args.temporal)) throw new Error(`--temporal must be dev or cluster, not ${args.temporal}`);
  log(`starting PostgreSQL and the Temporal ${args.temporal === 'cluster' ? `server ${TEMPORAL_SERVER_VERSION} cluster (4 shards, four processes)` : 'dev server'}`);
  const infra = await startInfra({ log, temporal: args.temporal });
  const processes: BenchContext['processes'] = {};
  let stopping: Promise<void> | undefined;
  // The roles and subscribers run detached (their own process groups), so
  // nothing else stops them: without this, a Ctrl-C during a 10-minute run
  // left PostgreSQL, the Temporal server and every Onceflow process running.
  const stopAll = () =>
    (stopping ??= (async () => {
      log('stopping');
      for (const process of Object.values(processes).reverse()) await process.stop().catch(() => undefined);
      await infra.stop();
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the stack; no results written`);
      void stopAll().finally(() => process.exit(130));
    });
  }
  const memory = createMemorySampler();
  const figures: Figure[] = [];
  const raw: Record<string, unknown> = {};
  const failures: Record<string, string> = {};
  let postgresVersion = 'unknown';
  try {
    postgresVersion = String((await infra.pool.query('SHOW server_version')).rows[0].server_version);
    await provisionBenchTenant(infra.pool);
    const geminiPort = await findFreePort();
    const apiPort = await findFreePort();
    const geminiUrl = `http://127.0.0.1:${geminiPort}`;
    const env = await roleEnv({ infra, taskQueue: 'onceflow', geminiBaseUrl: geminiUrl, extra: { PORT: String(apiPort), GEMINI_OFFLINE_PORT: String(geminiPort) } });
    // The worker bundles its workflows on a cold cache (webpack), which left
    // ~110 MiB more in its idle RSS than a start from the cache: build the
    // bundle here first, so the idle figure is the worker's steady state.
    await loadWorkflowBundle({ cacheDir: path.join(ROOT, '.onceflow', 'cache'), logger: createLogger({ service: 'bench', level: 'error' }) });
    log('starting gemini-offline, worker, relay and api processes');
    processes['gemini-offline'] = startRole('gemini-offline', env);
    await waitForHttp(`${geminiUrl}/__control/health`, 60_000, processes['gemini-offline']);
    processes.worker = startRole('worker', env);
    processes.relay = startRole('relay', env);
    processes.api = startRole('api', env);
    await waitForHttp(`http://127.0.0.1:${env.WORKER_METRICS_PORT}/metrics`, 120_000, processes.worker);
    await waitForHttp(`http://127.0.0.1:${env.RELAY_METRICS_PORT}/metrics`, 60_000, processes.relay);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitForHttp(`${apiUrl}/readyz`, 90_000, processes.api);
    for (const role of ['api', 'worker', 'relay'] as const) memory.watch(role, processes[role]!);
    await new Promise((r) => setTimeout(r, 3000));
    await memory.sampleIdle();
    log(`idle RSS: ${JSON.stringify(memory.report())}`);

    const ctx: BenchContext = { infra, log, runs: args.runs, seconds: args.seconds, pairs: args.pairs, pairSeconds: args.pairSeconds, geminiUrl, apiUrl, processes, figures, raw, memory };
    for (const name of args.arms) {
      log(`── ${name} ──`);
      try {
        await ARMS[name](ctx);
      } catch (error) {
        failures[name] = (error as Error).stack ?? String(error);
        log(`${name} FAILED: ${(error as Error).message}`);
      }
    }
    for (const [role, m] of Object.entries(memory.report())) {
      figures.push({ benchmark: '5 memory', metric: `${role} RSS, peak under load vs idle`, unit: 'MiB', onceflow: m.loadPeakMiB, reference: m.idleMiB, ratio: round(m.loadPeakMiB / m.idleMiB), target: '', referenceName: 'same process idle' });
    }
  } finally {
    await stopAll();
  }

  const result = {
    finishedAt: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    settings: args,
    machine,
    versions: versions({ temporal: args.temporal === 'cluster' ? `server ${TEMPORAL_SERVER_VERSION} (cluster)` : temporalVersion(infra.temporalBinary.path), postgresql: postgresVersion }),
    figures,
    failures,
    raw,
  };
  await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
  await writeFile(path.join(ROOT, `bench/results/latest${args.temporal === 'cluster' ? '-cluster' : ''}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const table = renderTable(result);
  // The README's main table is the dev server's; cluster figures are written up by hand next to it.
  if (!args.quick && !args.partial && args.temporal === 'dev') await updateReadme(table);
  process.stdout.write(`\n${table}\n`);
  if (Object.keys(failures).length > 0) {
    process.stdout.write(`\nfailed arms: ${Object.keys(failures).join(', ')} (see bench/results/latest.json)\n`);
  }
  // Explicit: a dependency's exit hook would otherwise end the process with 0.
  process.exit(Object.keys(failures).length > 0 ? 1 : 0);
}

function renderTable(result: { finishedAt: string; durationSeconds: number; settings: ReturnType<typeof parseArgs>; machine: ReturnType<typeof machineInfo>; versions: Record<string, string>; figures: Figure[]; failures: Record<string, string> }): string {
  const lines = [
    `Run ${result.finishedAt} (${result.durationSeconds} s; repeat path and starts: ${result.settings.pairs} alternating pairs of ${result.settings.pairSeconds} s runs, completed operations against the bare workflow: ${result.settings.pairs} pairs of ${result.settings.seconds} s runs, ratio = median of the pair ratios; other arms: ${result.settings.runs} measured runs of ${result.settings.seconds} s, median reported).`,
    `Machine: ${result.machine.nproc} cores (${result.machine.cpuModel}), ${result.machine.memoryGiB} GiB, ${result.machine.platform}; load average at start ${result.machine.loadAverageAtStart.join(' ')}.`,
    `Versions: ${Object.entries(result.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    '| benchmark | metric | Onceflow | reference | ratio | target | reference arm | note |',
    '| --- | --- | ---: | ---: | ---: | --- | --- | --- |',
    ...result.figures.map((f) =>
      `| ${f.benchmark} | ${f.metric} (${f.unit}) | ${f.onceflow} | ${f.reference} | ${f.ratio} | ${f.target ? `${f.target} ${f.met ? '✅' : '❌'}` : ''} | ${f.referenceName} | ${f.note ?? ''} |`,
    ),
  ];
  if (Object.keys(result.failures).length > 0) lines.push('', `Arms that failed in this run: ${Object.entries(result.failures).map(([k, v]) => `${k} (${v.split('\n')[0]})`).join('; ')}.`);
  return lines.join('\n');
}

/** `temporal --version`, e.g. "1.9.1 (Server 1.32.0, UI 2.54.1)". */
function temporalVersion(binary: string | undefined): string {
  if (!binary) return 'SDK download';
  const output = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  return /version (.+)$/m.exec(output)?.[1]?.trim() ?? 'unknown';
}

const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';

async function updateReadme(table: string): Promise<void> {
  const file = path.join(ROOT, 'bench/README.md');
  const text = await readFile(file, 'utf8').catch(() => `# Benchmarks\n\n${START}\n${END}\n`);
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const next = start >= 0 && end > start ? `${text.slice(0, start + START.length)}\n${table}\n${text.slice(end)}` : `${text}\n${START}\n${table}\n${END}\n`;
  await writeFile(file, next);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
