/**
 * `onceflow start --temporal cluster`: the local system with a real Temporal
 * cluster (./cluster.ts) in place of the dev server. The same roles as
 * `onceflow start` (dev/supervisor.ts spawnRole), started in the same
 * order. A separate runner rather than a branch in the supervisor because the
 * supervisor's keepers own one dev-server process, while here four services
 * share the embedded PostgreSQL and must stop before it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Config } from '../../src/config';
import { migrate } from '../../src/db/migrate';
import { createPool } from '../../src/db/pool';
import { LocalStackError } from '../errors';
import { startLocalPostgres, type LocalPostgres } from '../local-postgres';
import { assertPortFree } from '../ports';
import { DEMO_TENANTS, spawnRole, type Role } from '../supervisor';
import { SUPERVISOR_PID_ENV } from '../../src/config';
import { startLocalCluster, type TemporalCluster, TEMPORAL_SERVER_VERSION } from './index';

export interface RunClusterStackOptions {
  print?: (line: string) => void;
  stopSignal: Promise<unknown>;
}

export async function runClusterStack(config: Config, options: RunClusterStackOptions): Promise<void> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const offline = !config.GEMINI_API_KEY;
  await assertPortFree(config.PORT, 'PORT', config.HOST === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1');
  await assertPortFree(config.TEMPORAL_DEV_PORT, 'TEMPORAL_DEV_PORT');
  if (!config.DATABASE_URL) await assertPortFree(config.ONCEFLOW_EMBEDDED_PG_PORT, 'ONCEFLOW_EMBEDDED_PG_PORT');
  if (offline) await assertPortFree(config.GEMINI_OFFLINE_PORT, 'GEMINI_OFFLINE_PORT');
  await mkdir(config.stateDir, { recursive: true });

  let postgres: LocalPostgres | undefined;
  let cluster: TemporalCluster | undefined;
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
    await cluster?.stop();
    if (cluster) print('  stopped temporal cluster');
    cluster = undefined;
    await postgres?.stop();
    if (postgres) print('  stopped postgres');
    postgres = undefined;
  };
  try {
    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      postgres = await startLocalPostgres({ dir: path.join(config.stateDir, 'postgres'), port: config.ONCEFLOW_EMBEDDED_PG_PORT });
      databaseUrl = postgres.connectionString;
    }
    const pool = createPool({ connectionString: databaseUrl, max: 2, applicationName: 'onceflow-supervisor' });
    try {
      await migrate(pool);
    } finally {
      await pool.end();
    }
    print(`postgres: ${postgres ? `embedded on port ${postgres.port}` : 'DATABASE_URL'}, schema up to date`);
    cluster = await startLocalCluster({
      toolsDir: path.join(config.stateDir, 'tools'),
      postgresUrl: databaseUrl,
      dir: path.join(config.stateDir, 'temporal-cluster'),
      frontendPort: config.TEMPORAL_DEV_PORT,
      namespace: { namespace: config.TEMPORAL_NAMESPACE },
      log: (line) => print(`  ${line}`),
    });
    print(`temporal: server ${TEMPORAL_SERVER_VERSION} cluster, frontend ${cluster.address}, namespace ${cluster.namespace}, config ${cluster.configFile}`);
    print(`temporal ui: not bundled with the server; run \`temporal-ui-server\` (image temporalio/ui) with TEMPORAL_ADDRESS=${cluster.address}, or use \`temporal workflow list --address ${cluster.address}\``);

    const provisioned = config.ONCEFLOW_TENANTS ?? [];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: cluster.address,
      TEMPORAL_NAMESPACE: cluster.namespace,
      ONCEFLOW_TENANTS: provisioned.length > 0 ? provisioned.map((t) => `${t.tenantId}:${t.apiKey}`).join(',') : DEMO_TENANTS,
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
    const apiUrl = `http://${config.HOST === '0.0.0.0' ? '127.0.0.1' : config.HOST}:${config.PORT}`;
    await waitForHttp(`${apiUrl}/readyz`);
    print(`api: ${apiUrl}`);
    print('onceflow is up on a Temporal cluster. Ctrl-C stops everything.');

    const services = Object.values(cluster.services);
    const crashed = Promise.race([
      ...children.map((c) => c.exited.then((code) => `${c.role} exited with code ${code}`)),
      ...services.map((s) => s.exited().then(() => `the Temporal ${s.service} service exited (log ${path.join(cluster!.logDir, `${s.service}.log`)})`)),
    ]);
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
