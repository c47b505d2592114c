/**
 * Keeper process (see keeper.ts): runs one local server for the supervisor in
 * a process group of its own, and stops it when told to, on SIGINT/SIGTERM/
 * SIGHUP, or when the supervisor disappears. Between start and stop it does
 * what a harness's commands ask (stop and start the server, kill and start a
 * cluster service).
 * Spawned with an IPC channel (see node-entry.ts for built JS vs tsx).
 */
import { readFileSync } from 'node:fs';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { FromKeeper, KeeperCommand, KeptClusterInfo, KeptClusterOptions, KeptPostgresInfo, KeptRabbitmqInfo, KeptTemporalInfo, ServiceState, ToKeeper } from './keeper';
import { LocalStackError } from './errors';
import { startLocalPostgres } from './local-postgres';
import { startLocalRabbitmq } from './local-rabbitmq';
import { startLocalTemporal, type LocalTemporal } from './local-temporal';
import { type ServiceProcess, startTemporalCluster, type TemporalCluster } from './temporal-cluster/cluster';
import type { ClusterService } from './temporal-cluster/config';

/** How long the keeper waits for the processes it outlives after the supervisor died; default 30 s. */
const OUTLIVE_MAX_MS = 30_000;

interface Running {
  /** Stops the server; does nothing when it is already down. */
  stop(): Promise<void>;
  /** Starts it again after a stop, with the same options. */
  start(): Promise<void>;
  cluster?: ClusterControl;
}

interface ClusterControl {
  kill(service: ClusterService, signal: NodeJS.Signals): Promise<void>;
  startService(service: ClusterService): void;
  waitUntilServing(): Promise<void>;
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
      return { stop: () => rabbitmq.stop(), start: () => Promise.reject(new Error('the RabbitMQ keeper does not restart its server')) };
    }
    if (request.service === 'temporal-cluster') {
      const { onServiceExit, ...options } = request.options;
      const cluster = await startTemporalCluster({ ...options, ownProcessGroups: false, log: (line) => process.stdout.write(`${line}\n`) });
      const running = keepCluster(cluster, onServiceExit ?? 'stop');
      const info: KeptClusterInfo = {
        address: cluster.address, namespace: cluster.namespace, configFile: cluster.configFile, logDir: cluster.logDir, uiUrl: cluster.ui?.url ?? null,
        services: processesOf(cluster).map(stateOf),
      };
      await send({ type: 'ready', info });
      return running;
    }
    // The SDK's Runtime would otherwise shut itself down on SIGINT/SIGTERM and
    // take the dev server with it before we stop it in order.
    Runtime.install({ logger: new DefaultLogger('ERROR'), shutdownSignals: [] });
    const first = await startLocalTemporal(request.options);
    const info: KeptTemporalInfo = { address: first.address, namespace: first.namespace, uiUrl: first.uiUrl ?? null };
    await send({ type: 'ready', info });
    // A promise, so a stop (the harness died) during a restart waits for the
    // server being started instead of exiting with it still coming up.
    let temporal: Promise<LocalTemporal | undefined> = Promise.resolve(first);
    return {
      stop: async () => {
        const current = await temporal;
        temporal = Promise.resolve(undefined);
        await current?.stop();
      },
      start: async () => {
        const starting = temporal.then((current) => current ?? startLocalTemporal(request.options));
        temporal = starting.catch(() => undefined);
        await starting;
      },
    };
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

const processesOf = (cluster: TemporalCluster): ServiceProcess[] => [...Object.values(cluster.services), ...(cluster.ui ? [cluster.ui.process] : [])];
const stateOf = (service: ServiceProcess): ServiceState => ({ service: service.service, pid: service.pid() ?? null, alive: service.alive() });

/**
 * Reports every start and exit of a cluster process to the harness. A process
 * that exits on its own, not killed or stopped through a command, is a crash:
 * with `stop` the keeper ends with code 1, and `onceflow start` sees its keeper
 * exit and stops everything, as it does when the dev server dies.
 */
function keepCluster(cluster: TemporalCluster, onServiceExit: NonNullable<KeptClusterOptions['onServiceExit']>): Running {
  const deliberate = new Set<ServiceProcess>();
  const watchExit = (service: ServiceProcess) => {
    void service.exited().then(() => {
      void send({ type: 'service', state: stateOf(service) });
      if (stopping || deliberate.has(service) || onServiceExit === 'leave') return;
      process.stderr.write(`the Temporal ${service.service} process exited on its own (log ${cluster.logDir}/${service.service}.log); stopping the cluster\n`);
      void shutdown({ outlive: false, code: 1 });
    });
  };
  const startProcess = (service: ServiceProcess) => {
    if (service.alive()) return;
    deliberate.delete(service);
    service.start();
    void send({ type: 'service', state: stateOf(service) });
    watchExit(service);
  };
  // Their first states go out with `ready`.
  processesOf(cluster).forEach(watchExit);
  return {
    stop: async () => {
      processesOf(cluster).forEach((service) => deliberate.add(service));
      await cluster.stop();
    },
    start: async () => {
      processesOf(cluster).forEach(startProcess);
      await cluster.waitUntilServing();
    },
    cluster: {
      kill: async (name, signal) => {
        const service = cluster.services[name];
        deliberate.add(service);
        service.kill(signal);
        await service.exited();
      },
      startService: (name) => startProcess(cluster.services[name]),
      waitUntilServing: () => cluster.waitUntilServing(),
    },
  };
}

async function runCommand(command: KeeperCommand): Promise<void> {
  const server = await running;
  if (!server) throw new Error('no server runs yet');
  if (command.action === 'stop-server') return server.stop();
  if (command.action === 'start-server') return server.start();
  if (!server.cluster) throw new Error(`${command.action} is for the cluster keeper`);
  if (command.action === 'kill-service') return server.cluster.kill(command.service, command.signal);
  if (command.action === 'start-service') return server.cluster.startService(command.service);
  return server.cluster.waitUntilServing();
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
  else if (message.type === 'command') {
    void runCommand(message.command).then(
      () => send({ type: 'done', id: message.id }),
      (error: unknown) => send({ type: 'done', id: message.id, error: (error as Error)?.message ?? String(error) }),
    );
  }
  else if (message.type === 'stop') void shutdown({ outlive: false });
});
// The channel closes when the supervisor exits for any reason, SIGKILL included.
process.once('disconnect', () => void shutdown({ outlive: true }));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => void shutdown({ outlive: false }));
