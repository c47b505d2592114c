/**
 * `onceflow start --temporal cluster`: the local system with a real Temporal
 * cluster (./cluster.ts) and its Web UI in place of the dev server. The same
 * roles as `onceflow start` (dev/supervisor.ts spawnRole), started in the same
 * order, and the same keepers (dev/keeper.ts): PostgreSQL in one, the four
 * services and the UI server in another, so a SIGKILL of this process leaves
 * no server behind. A separate runner rather than a branch in the supervisor
 * because the server is built from source first and the cluster has its own
 * readiness and its own crash report.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { inheritedEnvironment, SUPERVISOR_PID_ENV, type Config } from '../../src/config';
import { migrate } from '../../src/db/migrate';
import { createPool } from '../../src/db/pool';
import { LocalStackError } from '../errors';
import { keepPostgres, keepTemporalCluster, type Keeper } from '../keeper';
import { assertPortFree } from '../ports';
import { DEMO_TENANTS, spawnRole, type Role } from '../supervisor';
import { firstFailure, KEEPER_EXIT_GRACE_MS } from '../first-failure';
import { ensureTemporalServer, ensureTemporalUi, TEMPORAL_SERVER_VERSION, TEMPORAL_UI_VERSION } from './build';

export interface RunClusterStackOptions {
  print?: (line: string) => void;
  stopSignal: Promise<unknown>;
}

export async function runClusterStack(config: Config, options: RunClusterStackOptions): Promise<void> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const offline = !config.GEMINI_API_KEY;
  await assertPortFree(config.PORT, 'PORT', config.HOST === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1');
  await assertPortFree(config.TEMPORAL_DEV_PORT, 'TEMPORAL_DEV_PORT');
  await assertPortFree(config.TEMPORAL_UI_PORT, 'TEMPORAL_UI_PORT');
  if (!config.DATABASE_URL) await assertPortFree(config.ONCEFLOW_EMBEDDED_PG_PORT, 'ONCEFLOW_EMBEDDED_PG_PORT');
  if (offline) await assertPortFree(config.GEMINI_OFFLINE_PORT, 'GEMINI_OFFLINE_PORT');
  await mkdir(config.stateDir, { recursive: true });

  // Built here, not in the keeper, so the minutes of a first build show up on the terminal.
  const toolsDir = path.join(config.stateDir, 'tools');
  const tools = await ensureTemporalServer({ toolsDir, log: (line) => print(`  ${line}`) });
  const ui = await ensureTemporalUi({ toolsDir, log: (line) => print(`  ${line}`) });

  // Started in this order, stopped in the reverse one: PostgreSQL last.
  const keepers: { name: string; keeper: Keeper<unknown>; logFile: string }[] = [];
  const children: { role: Role; child: ChildProcess; exited: Promise<number | null> }[] = [];
  const stopAll = async () => {
    for (const stage of [['api'], ['worker', 'relay'], ['gemini-offline']]) {
      await Promise.all(children.filter((c) => stage.includes(c.role)).map(async (c) => {
        if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
        const timer = setTimeout(() => c.child.kill('SIGKILL'), 10_000);
        await c.exited;
        clearTimeout(timer);
        print(`  stopped ${c.role}`);
      }));
    }
    children.length = 0;
    for (const { name, keeper } of [...keepers].reverse()) {
      await keeper.stop().catch(() => undefined);
      print(`  stopped ${name}`);
    }
    keepers.length = 0;
  };
  const keeperLog = (name: string) => path.join(config.stateDir, `${name.replaceAll(' ', '-')}.log`);
  try {
    let databaseUrl = config.DATABASE_URL;
    let postgres: Keeper<unknown> | undefined;
    if (!databaseUrl) {
      const kept = await keepPostgres({ dir: path.join(config.stateDir, 'postgres'), port: config.ONCEFLOW_EMBEDDED_PG_PORT }, { logFile: keeperLog('postgres') });
      keepers.push({ name: 'postgres', keeper: kept, logFile: keeperLog('postgres') });
      postgres = kept;
      databaseUrl = kept.info.connectionString;
    }
    const pool = createPool({ connectionString: databaseUrl, max: 2, applicationName: 'onceflow-supervisor' });
    try {
      await migrate(pool);
    } finally {
      await pool.end();
    }
    print(`postgres: ${config.DATABASE_URL ? 'DATABASE_URL' : `embedded on port ${config.ONCEFLOW_EMBEDDED_PG_PORT}`}, schema up to date`);

    const apiUrl = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
    print(`  starting the Temporal cluster (log ${keeperLog('temporal cluster')}) …`);
    const cluster = await keepTemporalCluster(
      {
        tools,
        postgresUrl: databaseUrl,
        dir: path.resolve(config.stateDir, 'temporal-cluster'),
        frontendPort: config.TEMPORAL_DEV_PORT,
        namespace: { namespace: config.TEMPORAL_NAMESPACE },
        // The api serves /codec only with payload keys and the operator token (src/http/app.ts).
        ui: { binary: ui.binary, port: config.TEMPORAL_UI_PORT, codecEndpoint: config.ONCEFLOW_CODEC_TOKEN && config.ONCEFLOW_PAYLOAD_KEYS ? `${apiUrl}/codec` : undefined },
      },
      // Four services stop one after another, each with up to 10 s of grace.
      { logFile: keeperLog('temporal cluster'), stopTimeoutMs: 90_000 },
    );
    keepers.push({ name: 'temporal cluster', keeper: cluster, logFile: keeperLog('temporal cluster') });
    // If this process is SIGKILLed, PostgreSQL stays up until the cluster's keeper is gone.
    postgres?.outlive([cluster.pid]);
    const { address, namespace, configFile, logDir, uiUrl } = cluster.info;
    print(`temporal: server ${TEMPORAL_SERVER_VERSION} cluster, frontend ${address}, namespace ${namespace}, config ${configFile}, service logs in ${logDir}`);
    print(`temporal ui: ${uiUrl} (ui-server ${TEMPORAL_UI_VERSION})`);

    const provisioned = config.ONCEFLOW_TENANTS ?? [];
    const env: NodeJS.ProcessEnv = {
      ...inheritedEnvironment(),
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      TEMPORAL_UI_URL: uiUrl ?? config.TEMPORAL_UI_URL,
      ONCEFLOW_TENANTS: provisioned.length > 0 ? provisioned.map((t) => `${t.tenantId}:${t.apiKey}`).join(',') : DEMO_TENANTS,
      ONCEFLOW_STATE_DIR: config.stateDir,
      [SUPERVISOR_PID_ENV]: String(process.pid),
    };
    const supervise = (role: Role) => {
      const child = spawnRole(role, env);
      for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', (line) => print(`${`[${role}]`.padEnd(17)}${line}`));
      children.push({ role, child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) });
    };
    if (offline) {
      env.GEMINI_BASE_URL = `http://127.0.0.1:${config.GEMINI_OFFLINE_PORT}`;
      supervise('gemini-offline');
      await waitForHttp(`${env.GEMINI_BASE_URL}/__control/health`);
    }
    for (const role of ['worker', 'relay', 'api'] as const) supervise(role);
    // If this process is SIGKILLed, the roles notice (they poll our pid) and
    // drain; the keepers wait for them before stopping the servers they use.
    const rolePids = children.map((c) => c.child.pid).filter((pid): pid is number => pid !== undefined);
    for (const { keeper } of keepers) keeper.outlive(rolePids);
    await waitForHttp(`${apiUrl}/readyz`);
    print(`api: ${apiUrl}`);
    print('onceflow is up on a Temporal cluster. Ctrl-C stops everything.');

    const crashed = firstFailure(
      children.map((c) => c.exited.then((code) => `${c.role} exited with code ${code}`)),
      keepers.map(({ name, keeper, logFile }) => keeper.exited.then((code) => `the ${name} keeper exited with code ${code} (log ${logFile})`)),
      KEEPER_EXIT_GRACE_MS,
    );
    const reason = await Promise.race([options.stopSignal.then(() => undefined), crashed]);
    print(reason ? `${reason}; stopping everything` : 'stopping …');
    await stopAll();
    if (reason) throw new LocalStackError(reason, 'see the log lines above');
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function waitForHttp(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2_000) })).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new LocalStackError(`${url} did not answer within ${timeoutMs / 1000}s`, 'see the log lines above');
    await new Promise((r) => setTimeout(r, 250));
  }
}
