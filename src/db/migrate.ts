import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { MigrationError } from './errors';
import { withTransaction } from './transaction';

const MIGRATIONS_DIR = path.join(__dirname, 'migrations');
// Any constant works; it only has to be the same in every process that migrates.
const MIGRATION_LOCK_ID = 7_318_004_211;

export interface Migration {
  version: number;
  file: string;
  sql: string;
}

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 3)),
      file,
      sql: await readFile(path.join(dir, file), 'utf8'),
    })),
  );
}

/**
 * Applies pending migrations in order, forward only. Each migration and its
 * version row commit in one transaction, so a crash mid-migration leaves the
 * schema at the previous version. An advisory lock lets api, worker and relay
 * all call this at start without racing.
 */
export async function migrate(pool: pg.Pool): Promise<{ applied: string[] }> {
  const applied: string[] = [];
  const migrations = await listMigrations();
  const lockClient = await pool.connect();
  try {
    await lockClient.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    await lockClient.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY,
         file text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await lockClient.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => r.version));
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      try {
        await withTransaction(pool, async (tx) => {
          await tx.query(migration.sql);
          await tx.query('INSERT INTO schema_migrations (version, file) VALUES ($1, $2)', [
            migration.version,
            migration.file,
          ]);
        });
      } catch (cause) {
        throw new MigrationError(migration.version, migration.file, { cause });
      }
      applied.push(migration.file);
    }
  } finally {
    await lockClient.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    lockClient.release();
  }
  return { applied };
}

/** Versions known to the code but not applied to the database (for `doctor` and `/readyz`). */
export async function pendingMigrations(pool: pg.Pool): Promise<string[]> {
  const migrations = await listMigrations();
  const { rows } = await pool
    .query<{ version: number }>('SELECT version FROM schema_migrations')
    .catch(() => ({ rows: [] as { version: number }[] }));
  const done = new Set(rows.map((r) => r.version));
  return migrations.filter((m) => !done.has(m.version)).map((m) => m.file);
}
