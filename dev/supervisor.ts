/**
 * `onceflow start`: the whole local system on embedded defaults. Starts a real
 * PostgreSQL (embedded unless DATABASE_URL is set), a real Temporal dev server
 * with its Web UI, the offline model server when no GEMINI_API_KEY is set, a
 * RabbitMQ (when RABBITMQ_URL is unset and rabbitmq-server is installed), and
 * then the api, worker, relay and queue consumer as separate processes. Ctrl-C stops them all;
 * state lives under ONCEFLOW_STATE_DIR, so the next start finds it again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { inheritedEnvironment, SUPERVISOR_PID_ENV, type Config } from '../src/config';
import { createPool } from '../src/db/pool';
import { migrate } from '../src/db/migrate';
import { LocalStackError } from './errors';
import { keepPostgres, keepRabbitmq, keepTemporal, type Keeper, type KeptRabbitmqInfo } from './keeper';
import { RABBITMQ_SERVER_BINARY } from './local-rabbitmq';
import { childCwd, nodeArgs, nodeEntry } from './node-entry';
import { assertPortFree } from './ports';
import { firstFailure, KEEPER_EXIT_GRACE_MS } from './first-failure';
import { resolveTemporalBinary } from './temporal-binary';

/** The demo tenant of a local run when ONCEFLOW_TENANTS is unset. */
export const DEMO_TENANTS = 'demo:demo-key-change-me';

export type Role = 'api' | 'worker' | 'relay' | 'consumer' | 'gemini-offline';

/**
 * Entry file of each process the supervisor runs (also used by tests that kill
 * them), beside this file: `src/**` and `dev/**` from a checkout, `dist/src/**`
 * and `dist/dev/**` from an installed package, where tsx is not installed.
 */
export const roleEntrypoints: Record<Role, string> = {
  api: nodeEntry('../src/http/server'),
  worker: nodeEntry('../src/worker/main'),
  relay: nodeEntry('../src/relay/main'),
  consumer: nodeEntry('../src/consumer/main'),
  'gemini-offline': nodeEntry('./gemini-offline/main'),
};

/** Starts one Onceflow process (built JS, or TypeScript through tsx in a checkout), as `onceflow start` and the fault tests do. */
export function spawnRole(role: Role, env: NodeJS.ProcessEnv, options: { stdio?: 'pipe' | 'inherit' } = {}): ChildProcess {
  return spawn(process.execPath, nodeArgs(roleEntrypoints[role]), {
    cwd: childCwd(),
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
  // The SDK's metrics exporter binds 0.0.0.0 inside Core; a taken port would
  // only show up as the worker dying after everything else had started.
  await assertPortFree(config.WORKER_SDK_METRICS_PORT, 'WORKER_SDK_METRICS_PORT', '0.0.0.0');
  await assertPortFree(config.RELAY_METRICS_PORT, 'RELAY_METRICS_PORT');
  if (embeddedPostgres) await assertPortFree(config.ONCEFLOW_EMBEDDED_PG_PORT, 'ONCEFLOW_EMBEDDED_PG_PORT');
  if (offline) await assertPortFree(config.GEMINI_OFFLINE_PORT, 'GEMINI_OFFLINE_PORT');
  const broker = await chooseBroker(config);
  if (broker.kind !== 'none') await assertPortFree(config.CONSUMER_METRICS_PORT, 'CONSUMER_METRICS_PORT');

  await mkdir(config.stateDir, { recursive: true });
  const binary = await resolveTemporalBinary({
    explicitPath: config.TEMPORAL_CLI_PATH,
    toolsDir: path.join(config.stateDir, 'tools'),
    log: (line) => print(`  ${line}`),
  });
  if (!binary.path) print("  no temporal CLI here and none could be installed: trying the SDK's download (needs internet)");
  print(`temporal CLI: ${binary.path ?? '(SDK download)'} [via ${binary.source}]`);

  // Started in this order, stopped in the reverse one: the database last.
  const keepers: { name: string; keeper: Keeper<unknown> }[] = [];
  const children: Supervised[] = [];
  // RabbitMQ starts beside PostgreSQL and Temporal (a cold start takes ~12 s)
  // and joins the keepers once it is up; a broker that fails is reported and
  // the rest runs without the queue door.
  const rabbitmqStart: Promise<Keeper<KeptRabbitmqInfo> | Error> | undefined =
    broker.kind === 'embedded'
      ? keepRabbitmq(
          { dir: path.join(config.stateDir, 'rabbitmq'), port: config.ONCEFLOW_EMBEDDED_RABBITMQ_PORT, distPort: config.ONCEFLOW_EMBEDDED_RABBITMQ_DIST_PORT },
          { logFile: path.join(config.stateDir, 'rabbitmq.log') },
        ).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))))
      : undefined;
  const stopAll = async () => {
    // api and consumer first (no new requests or messages), then worker and relay
    // drain, then the offline model they may still be calling, then the broker,
    // Temporal, PostgreSQL. One line per part, in order, so a user (and the
    // stack test) sees what stopped how.
    const rabbitmq = await rabbitmqStart;
    if (rabbitmq && !(rabbitmq instanceof Error) && !keepers.some((k) => k.keeper === rabbitmq)) keepers.push({ name: 'rabbitmq', keeper: rabbitmq });
    for (const stage of [['api', 'consumer'], ['worker', 'relay'], ['gemini-offline']] as const) {
      await Promise.all(
        children
          .filter((c) => (stage as readonly Role[]).includes(c.role))
          .map(async (c) => print(`  stopped ${c.role} (${describeExit(await stopChild(c))})`)),
      );
    }
    for (const { name, keeper } of [...keepers].reverse()) {
      await keeper.stop().catch(() => undefined);
      print(`  stopped ${name} (${describeExit(await keeper.exited)})`);
    }
    keepers.length = 0;
    children.length = 0;
  };
  // Keepers use their server's log file for everything the server prints.
  const keeperLog = (name: string) => ({ logFile: path.join(config.stateDir, `${name}.log`) });

  try {
    let databaseUrl = config.DATABASE_URL;
    let postgres: Keeper<{ connectionString: string; dataDir: string }> | undefined;
    if (!databaseUrl) {
      postgres = await keepPostgres({ dir: path.join(config.stateDir, 'postgres'), port: config.ONCEFLOW_EMBEDDED_PG_PORT }, keeperLog('postgres'));
      keepers.push({ name: 'postgres', keeper: postgres });
      databaseUrl = postgres.info.connectionString;
    }
    const pool = createPool({ connectionString: databaseUrl, max: 2, applicationName: 'onceflow-supervisor' });
    try {
      const { applied } = await migrate(pool);
      print(`postgres: ${redactUrl(databaseUrl)} [${postgres ? `embedded, data in ${postgres.info.dataDir}` : 'DATABASE_URL'}]${applied.length ? `, applied ${applied.join(', ')}` : ', schema up to date'}`);
    } finally {
      await pool.end();
    }

    const temporalKeeper = await keepTemporal(
      {
        binary,
        port: config.TEMPORAL_DEV_PORT,
        uiPort: config.TEMPORAL_UI_PORT,
        dbFilename: path.join(config.stateDir, 'temporal.sqlite'),
        namespace: config.TEMPORAL_NAMESPACE,
        downloadDir: path.join(config.stateDir, 'tools'),
      },
      keeperLog('temporal'),
    );
    keepers.push({ name: 'temporal', keeper: temporalKeeper });
    // If this process is SIGKILLed, PostgreSQL stays up until Temporal's keeper is gone.
    postgres?.outlive([temporalKeeper.pid]);
    const temporal = temporalKeeper.info;
    print(`temporal: ${temporal.address} (namespace ${temporal.namespace}, state in ${path.join(config.stateDir, 'temporal.sqlite')}, log ${keeperLog('temporal').logFile})`);
    print(`temporal ui: ${temporal.uiUrl}`);

    const provisioned = config.ONCEFLOW_TENANTS ?? [];
    const tenants = provisioned.length > 0 ? provisioned.map((t) => `${t.tenantId}:${t.apiKey}`).join(',') : DEMO_TENANTS;
    const env: NodeJS.ProcessEnv = {
      ...inheritedEnvironment(),
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TEMPORAL_UI_URL: temporal.uiUrl ?? config.TEMPORAL_UI_URL,
      ONCEFLOW_TENANTS: tenants,
      // The local run's example consumer listens on loopback (examples/consumer),
      // which subscriptions may not name unless the operator allowlists it.
      WEBHOOK_ALLOWED_HOSTS: (config.WEBHOOK_ALLOWED_HOSTS.length > 0 ? config.WEBHOOK_ALLOWED_HOSTS : ['127.0.0.1', 'localhost', '::1']).join(','),
      // The children may run in another directory (tsx needs the checkout's root):
      // they must find the same state (the worker's bundle cache) as this process.
      ONCEFLOW_STATE_DIR: config.stateDir,
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

    let queueLine: string;
    if (broker.kind === 'external') {
      env.RABBITMQ_URL = broker.url;
      queueLine = `queue: consumer reads ${config.QUEUE_NAME} on ${redactUrl(broker.url)} [RABBITMQ_URL], metrics http://127.0.0.1:${config.CONSUMER_METRICS_PORT}/metrics`;
    } else if (rabbitmqStart) {
      const rabbitmq = await rabbitmqStart;
      if (rabbitmq instanceof Error) {
        queueLine = `queue: OFF, the local RabbitMQ did not start (${rabbitmq.message}; see ${path.join(config.stateDir, 'rabbitmq.log')}); everything else runs`;
      } else {
        keepers.push({ name: 'rabbitmq', keeper: rabbitmq });
        env.RABBITMQ_URL = rabbitmq.info.url;
        queueLine = `queue: consumer reads ${config.QUEUE_NAME} on ${redactUrl(rabbitmq.info.url)} [embedded rabbitmq, data in ${path.join(config.stateDir, 'rabbitmq')}], metrics http://127.0.0.1:${config.CONSUMER_METRICS_PORT}/metrics`;
      }
    } else {
      queueLine = `queue: OFF, ${broker.kind === 'none' ? broker.reason : ''}; everything else runs`;
    }
    const roles: Role[] = env.RABBITMQ_URL && broker.kind !== 'none' ? ['worker', 'relay', 'consumer', 'api'] : ['worker', 'relay', 'api'];
    for (const role of roles) children.push(supervise(role, env, print));
    // If this process is SIGKILLed, the roles notice (they poll our pid) and
    // drain; the keepers wait for them before stopping the servers they use.
    const rolePids = children.map((c) => c.child.pid).filter((pid): pid is number => pid !== undefined);
    for (const { keeper } of keepers) keeper.outlive(rolePids);
    const apiUrl = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
    await waitForHttp(`${apiUrl}/readyz`, children, 'api');
    if (roles.includes('consumer')) await waitForHttp(`http://127.0.0.1:${config.CONSUMER_METRICS_PORT}/metrics`, children, 'consumer');
    print(`api: ${apiUrl}  (docs ${apiUrl}/docs, metrics ${apiUrl}/metrics)`);
    print(`worker: task queue ${config.TEMPORAL_TASK_QUEUE}, metrics http://127.0.0.1:${config.WORKER_METRICS_PORT}/metrics`);
    print(`relay: metrics http://127.0.0.1:${config.RELAY_METRICS_PORT}/metrics`);
    print(queueLine);
    print(`tenants: ${tenants.split(',').map((p) => p.split(':')[0]).join(', ')}${provisioned.length > 0 ? '' : ` (demo key: curl -H 'Authorization: Bearer ${DEMO_TENANTS.split(':')[1]}' …)`}`);
    print('onceflow is up. Ctrl-C stops everything.');

    const crashed = firstFailure(
      children.map((c) => c.exited.then((code) => ({ role: c.role as string, code, hint: 'see its log lines above' }))),
      keepers.map(({ name, keeper }) => keeper.exited.then((code) => ({ role: `the ${name} keeper`, code, hint: `see ${keeperLog(name).logFile}` }))),
      KEEPER_EXIT_GRACE_MS,
    );
    const reason = await Promise.race([stopSignal.then(() => undefined), crashed]);
    if (reason) print(`${reason.role} exited with code ${reason.code}; stopping everything`);
    else print('stopping …');
    await stopAll();
    print('stopped.');
    if (reason) throw new LocalStackError(`${reason.role} exited unexpectedly (code ${reason.code})`, reason.hint);
  } catch (error) {
    await stopAll();
    throw error;
  }
}

type BrokerChoice = { kind: 'external'; url: string } | { kind: 'embedded' } | { kind: 'none'; reason: string };

/**
 * Which RabbitMQ the consumer reads: RABBITMQ_URL when set, else one of our
 * own from Debian's package (`make broker` installs it). Without either, or
 * with its ports taken, the stack starts without the queue door and says so:
 * the broker is one door of three, not a reason to refuse the others.
 */
async function chooseBroker(config: Config): Promise<BrokerChoice> {
  if (config.RABBITMQ_URL) return { kind: 'external', url: config.RABBITMQ_URL };
  if (!existsSync(RABBITMQ_SERVER_BINARY)) {
    return { kind: 'none', reason: `rabbitmq-server is not installed (${RABBITMQ_SERVER_BINARY}; \`make broker\` or apt-get install rabbitmq-server adds it, or set RABBITMQ_URL)` };
  }
  for (const [port, variable] of [[config.ONCEFLOW_EMBEDDED_RABBITMQ_PORT, 'ONCEFLOW_EMBEDDED_RABBITMQ_PORT'], [config.ONCEFLOW_EMBEDDED_RABBITMQ_DIST_PORT, 'ONCEFLOW_EMBEDDED_RABBITMQ_DIST_PORT']] as const) {
    try {
      await assertPortFree(port, variable);
    } catch {
      return { kind: 'none', reason: `port ${port} (${variable}) is taken, so no local RabbitMQ (set RABBITMQ_URL to use the one there)` };
    }
  }
  return { kind: 'embedded' };
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

/** Stops one role (SIGTERM, then SIGKILL after graceMs) and resolves with its exit code, or the signal that ended it. */
async function stopChild(supervised: Supervised, graceMs = 10_000): Promise<number | string | null> {
  const { child } = supervised;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await supervised.exited;
    clearTimeout(timer);
  }
  return child.exitCode ?? child.signalCode;
}

function describeExit(code: number | string | null): string {
  return typeof code === 'number' ? `exit ${code}` : `killed by ${code ?? 'unknown'}`;
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
