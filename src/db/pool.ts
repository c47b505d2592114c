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
  return pool;
}
