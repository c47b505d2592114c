/**
 * Keeper process (see keeper.ts): runs one local server for the supervisor in
 * a process group of its own, and stops it when told to, on SIGINT/SIGTERM/
 * SIGHUP, or when the supervisor disappears.
 * Spawned with an IPC channel (see node-entry.ts for built JS vs tsx).
 */
import { readFileSync } from 'node:fs';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { FromKeeper, KeptClusterInfo, KeptPostgresInfo, KeptRabbitmqInfo, KeptTemporalInfo, ToKeeper } from './keeper';
import { LocalStackError } from './errors';
import { startLocalPostgres } from './local-postgres';
import { startLocalRabbitmq } from './local-rabbitmq';
import { startLocalTemporal } from './local-temporal';
import { startTemporalCluster } from './temporal-cluster/cluster';

/** How long the keeper waits for the processes it outlives after the supervisor died; default 30 s. */
const OUTLIVE_MAX_MS = 30_000;

interface Running {
  stop(): Promise<void>;
}

const outlived = new Set<number>();
let running: Promise<Running | undefined> = Promise.resolve(undefined);
let stopping: Promise<void> | undefined;

function send(message: FromKeeper): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

async function start(request: Extract<ToKeeper, { type: 'start' }>): Promise<Running> {
  try {
    if (request.service === 'postgres') {
      const postgres = await startLocalPostgres({ ...request.options, onLog: (line) => process.stdout.write(`${line}\n`) });
      const info: KeptPostgresInfo = { connectionString: postgres.connectionString, dataDir: postgres.dataDir, port: postgres.port };
      await send({ type: 'ready', info });
      return postgres;
    }
    if (request.service === 'rabbitmq') {
      const rabbitmq = await startLocalRabbitmq(request.options);
      const info: KeptRabbitmqInfo = { url: rabbitmq.url, port: rabbitmq.port };
      await send({ type: 'ready', info });
      return rabbitmq;
    }
    if (request.service === 'temporal-cluster') {
      const cluster = await startTemporalCluster({ ...request.options, ownProcessGroups: false, log: (line) => process.stdout.write(`${line}\n`) });
      const info: KeptClusterInfo = { address: cluster.address, namespace: cluster.namespace, configFile: cluster.configFile, logDir: cluster.logDir, uiUrl: cluster.ui?.url ?? null };
      await send({ type: 'ready', info });
      // A service that exits on its own ends the keeper with code 1: the
      // supervisor sees the keeper exit and stops everything, as it does when
      // the dev server dies. Exits while we stop them are not crashes.
      for (const service of [...Object.values(cluster.services), ...(cluster.ui ? [cluster.ui.process] : [])]) {
        void service.exited().then(() => {
          if (stopping) return;
          process.stderr.write(`the Temporal ${service.service} process exited on its own (log ${cluster.logDir}/${service.service}.log); stopping the cluster\n`);
          void shutdown({ outlive: false, code: 1 });
        });
      }
      return cluster;
    }
    // The SDK's Runtime would otherwise shut itself down on SIGINT/SIGTERM and
    // take the dev server with it before we stop it in order.
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
    const temporal = await startLocalTemporal(request.options);
    const info: KeptTemporalInfo = { address: temporal.address, namespace: temporal.namespace, uiUrl: temporal.uiUrl ?? null };
    await send({ type: 'ready', info });
    return temporal;
  } catch (error) {
    const e = error as Error;
    process.stderr.write(`${e?.stack ?? String(error)}\n`);
    await send({
      type: 'failed',
      message: e?.message ?? String(error),
      hint: error instanceof LocalStackError ? error.hint : 'see the keeper log in the state directory',
    });
    process.exit(1);
  }
}

/** Linux keeps a dead child as a zombie until its new parent reaps it; kill(pid, 0) still succeeds on one. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // no /proc (macOS): kill(pid, 0) is all we have
    return true;
  }
}

function shutdown(options: { outlive: boolean; code?: number }): Promise<void> {
  stopping ??= (async () => {
    const server = await running.catch(() => undefined);
    if (options.outlive) {
      // The supervisor is gone, so nobody stops the api, worker and relay in
      // order; they notice on their own within a second. Stopping our server
      // under them would fail their drain, so wait for them first (bounded).
      const deadline = Date.now() + OUTLIVE_MAX_MS;
      while ([...outlived].some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    }
    try {
      await server?.stop();
    } catch (error) {
      process.stderr.write(`stop failed: ${(error as Error)?.message ?? String(error)}\n`);
    }
    await send({ type: 'stopped' });
    process.exit(options.code ?? 0);
  })();
  return stopping;
}

process.on('message', (message: ToKeeper) => {
  if (message.type === 'start') running = start(message);
  else if (message.type === 'outlive') message.pids.forEach((pid) => outlived.add(pid));
  else if (message.type === 'stop') void shutdown({ outlive: false });
});
// The channel closes when the supervisor exits for any reason, SIGKILL included.
process.once('disconnect', () => void shutdown({ outlive: true }));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void shutdown({ outlive: false }));
