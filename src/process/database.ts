import type { Config } from '../config';
import { migrate } from '../db/migrate';
import { createPool, type Pool } from '../db/pool';
import type { Logger } from '../observability/logger';
import { requireDatabaseUrl, type EntrypointContext } from './entrypoint';

export interface ProcessDatabaseOptions {
  /** `api`, `worker`, `relay`, `consumer`: the pool shows as `onceflow-<role>` in pg_stat_activity. */
  role: string;
  config: Pick<Config, 'DATABASE_URL' | 'DATABASE_POOL_SIZE'>;
  logger: Logger;
  onShutdown: EntrypointContext['onShutdown'];
}

/**
 * The PostgreSQL pool of a standalone process: DATABASE_URL required, sized
 * by DATABASE_POOL_SIZE, ended at shutdown, and migrated before the process
 * uses it. Every process migrates at start, so whichever comes up first on a
 * new release brings the schema forward (the runner's advisory lock makes the
 * others wait, then find nothing left to apply).
 */
export async function openProcessDatabase(options: ProcessDatabaseOptions): Promise<{ pool: Pool; databaseUrl: string }> {
  const databaseUrl = requireDatabaseUrl(options.config);
  const pool = createPool({
    connectionString: databaseUrl,
    max: options.config.DATABASE_POOL_SIZE,
    applicationName: `onceflow-${options.role}`,
    onIdleError: (error) => options.logger.warn({ err: error.message }, 'idle database connection failed; reconnecting on next use'),
  });
  options.onShutdown(() => pool.end());
  await migrate(pool);
  return { pool, databaseUrl };
}
