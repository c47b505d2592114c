import { ConfigError, startupSettings, type Config, type StartupSettings } from '../config';
import { AppError } from '../errors';

export interface EntrypointContext {
  /** Registers cleanup, run in reverse order on SIGINT/SIGTERM or when main returns. */
  onShutdown(cleanup: () => unknown): void;
  /** Resolves when a stop signal arrives. */
  stopped: Promise<NodeJS.Signals>;
}

/**
 * Thrown when a process cannot start for a reason the user can fix; printed as
 * one line with its hint. The local stack's errors (dev/errors.ts) extend it.
 */
export class StartupError extends AppError<{ hint: string }> {
  override readonly name: string = 'StartupError';
  constructor(message: string, readonly hint: string, options?: { cause?: unknown }) {
    super(message, { context: { hint }, cause: options?.cause });
  }
}

/** A standalone process needs DATABASE_URL; only the supervisor starts an embedded server. */
export function requireDatabaseUrl(config: Pick<Config, 'DATABASE_URL'>): string {
  if (!config.DATABASE_URL) {
    throw new ConfigError([{ variable: 'DATABASE_URL', message: 'required when this process runs alone (`npm start` sets it for you)' }]);
  }
  return config.DATABASE_URL;
}

/**
 * Error codes that mean "this DATABASE_URL leads nowhere usable": refused,
 * unknown host, no route, timed out, bad password (28P01), no such database
 * (3D000), no pg_hba entry (28000).
 */
const POSTGRES_UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', '28P01', '3D000', '28000']);
/**
 * pg and pg-pool raise these without a code. A blackholed address (a firewall
 * that drops, a host that is down) never refuses: the pool gives up after its
 * connectionTimeoutMillis with the first or second message, and a port where
 * something that is not PostgreSQL hangs up gives the third.
 */
const POSTGRES_UNREACHABLE_MESSAGE = /timeout exceeded when trying to connect|Connection terminated due to connection timeout|Connection terminated unexpectedly/i;

/** The host:port of a connection string, never its password. */
function databaseTarget(url: string | undefined): string {
  try {
    const parsed = new URL(url ?? '');
    return ` at ${parsed.hostname}:${parsed.port || '5432'}`;
  } catch {
    return '';
  }
}

/** One line for the user: what is wrong and how to fix it, never a stack trace. */
export function describeStartupError(error: unknown, settings: Pick<StartupSettings, 'databaseUrl' | 'temporalAddress'> = startupSettings()): string {
  if (error instanceof ConfigError) return `${error.message} — fix the variable(s) named above; README.md lists every variable`;
  if (error instanceof StartupError) return `${error.message} — ${error.hint}`;
  const e = error as { code?: string; message?: string; address?: string; port?: number; name?: string };
  if (POSTGRES_UNREACHABLE_CODES.has(e?.code ?? '') || POSTGRES_UNREACHABLE_MESSAGE.test(e?.message ?? '')) {
    const kind = e.code ?? (/timeout/i.test(e.message ?? '') ? 'timeout' : 'error');
    return `cannot reach PostgreSQL${databaseTarget(settings.databaseUrl)} (${kind}: ${firstLine(e.message)}) — start PostgreSQL or fix DATABASE_URL${settings.databaseUrl ? '' : ' (unset)'}`;
  }
  if (/TransportError|Failed to connect|tcp connect error|connection refused/i.test(`${e?.name} ${e?.message}`)) {
    return `cannot reach Temporal at ${settings.temporalAddress ?? 'localhost:7233'} (${firstLine(e?.message)}) — start the Temporal server or fix TEMPORAL_ADDRESS`;
  }
  return `${firstLine(e?.message ?? String(error))} — rerun with LOG_LEVEL=debug for details`;
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]?.trim() ?? '';
}

/**
 * Runs a process's main function with signal handling and one-line startup
 * errors. Exit codes: 0 clean stop, 1 failure, 2 bad configuration.
 */
export function runEntrypoint(name: string, main: (context: EntrypointContext) => Promise<unknown>): void {
  const cleanups: (() => unknown)[] = [];
  let resolveStopped!: (signal: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (resolveStopped = resolve));
  // One shutdown, however many ask for it: a stop signal starts it and main
  // (which awaited `stopped`) then asks again before exiting. Every caller waits
  // for the same run, so process.exit never cuts a cleanup short (a relay's
  // batch in flight, a worker draining its activities).
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (shuttingDown ??= (async () => {
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch {
          // keep closing the rest
        }
      }
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      resolveStopped(signal);
      void shutdown();
    });
  }
  watchSupervisor(() => {
    resolveStopped('SIGTERM');
    void shutdown().then(() => process.exit(1));
  });
  main({ onShutdown: (cleanup) => cleanups.push(cleanup), stopped })
    .then(async () => {
      await shutdown();
      process.exit(0);
    })
    .catch(async (error: unknown) => {
      process.stderr.write(`onceflow ${name}: ${describeStartupError(error)}\n`);
      if (startupSettings().debug) process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
      await shutdown();
      process.exit(error instanceof ConfigError ? 2 : 1);
    });
}

/**
 * A child of `onceflow start` stops when its supervisor is gone (killed with
 * SIGKILL, say), so no orphan api/worker/relay keeps ports and connections.
 */
function watchSupervisor(onGone: () => void): void {
  const pid = startupSettings().supervisorPid;
  if (pid === undefined) return;
  const timer = setInterval(() => {
    try {
      process.kill(pid, 0);
    } catch {
      clearInterval(timer);
      onGone();
    }
  }, 1_000);
  timer.unref();
}
