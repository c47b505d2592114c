import pg from 'pg';

// int8 (bigint) columns hold epoch milliseconds and counters that stay well
// inside Number.MAX_SAFE_INTEGER; parse them as numbers instead of strings.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that can run a query: the pool, or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'>;

export interface CreatePoolOptions {
  connectionString: string;
  /** Default 10. */
  max?: number;
  /** Shown in pg_stat_activity; default `onceflow`. */
  applicationName?: string;
  /** Called for errors on idle clients (e.g. PostgreSQL restarted); default: ignore, the next checkout reconnects. */
  onIdleError?: (error: Error) => void;
}

export function createPool(options: CreatePoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'onceflow',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // Without a listener, an idle client's error (server restart) crashes the process.
  pool.on('error', (error) => options.onIdleError?.(error));
  // pg-pool listens only while a client is idle. A client checked out but with
  // no query running (a transaction awaiting other work, a held advisory lock)
  // that PostgreSQL ends (57P01 on restart, a dropped socket) emits 'error' with
  // nobody listening, and Node kills the process. The holder learns of the loss
  // anyway: its next query rejects, and the pool discards the client on release.
  pool.on('connect', (client) => client.on('error', ignoreLostConnection));
  return pool;
}

function ignoreLostConnection(): void {
  // surfaced to the holder by its next query; see createPool
}
