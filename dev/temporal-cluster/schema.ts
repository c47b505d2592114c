/**
 * The persistence and visibility databases, created and migrated with
 * Temporal's own schema tool, as an operator does before the first start.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalStackError } from '../errors';
import type { TemporalServerTools } from './build';

const exec = promisify(execFile);

export interface PostgresEndpoint {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** Names the cluster's two databases get inside the shared PostgreSQL. */
export const CLUSTER_DATABASES = { persistence: 'temporal', visibility: 'temporal_visibility' } as const;

export function endpointFromUrl(connectionString: string): PostgresEndpoint {
  const url = new URL(connectionString);
  return { host: url.hostname, port: Number(url.port || 5432), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

/**
 * Idempotent: creates each database and its version table only when missing,
 * then applies the versioned migrations the tool has not applied yet (it keeps
 * its own version table), so a second run after an upgrade moves the schema on.
 */
export async function setupClusterSchemas(tools: TemporalServerTools, endpoint: PostgresEndpoint, log: (line: string) => void = () => undefined): Promise<void> {
  const admin = new pg.Client({ ...endpoint, database: 'postgres' });
  await admin.connect();
  try {
    for (const [kind, database] of Object.entries(CLUSTER_DATABASES)) {
      const base = ['--plugin', 'postgres12', '--ep', endpoint.host, '-p', String(endpoint.port), '-u', endpoint.user, '--pw', endpoint.password, '--db', database];
      const { rowCount: present } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (!present) {
        log(`creating database ${database}`);
        await runTool(tools, [...base, 'create-database']);
      }
      const db = new pg.Client({ ...endpoint, database });
      await db.connect();
      const { rows } = await db.query<{ versioned: boolean }>("SELECT to_regclass('public.schema_version') IS NOT NULL AS versioned").finally(() => db.end());
      if (!rows[0]?.versioned) await runTool(tools, [...base, 'setup-schema', '-v', '0.0']);
      const dir = path.join(tools.schemaDir, kind === 'persistence' ? 'temporal' : 'visibility', 'versioned');
      await runTool(tools, [...base, 'update-schema', '-d', dir]);
      log(`schema of ${database} is current (${dir})`);
    }
  } finally {
    await admin.end();
  }
}

async function runTool(tools: TemporalServerTools, args: string[]): Promise<void> {
  try {
    await exec(tools.sqlTool, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (cause) {
    const e = cause as { stderr?: string; stdout?: string };
    const output = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim().split('\n').slice(-3).join(' | ');
    throw new LocalStackError(
      `temporal schema tool failed: ${args.filter((_, i) => args[i - 1] !== '--pw').join(' ')}: ${output}`,
      'check that PostgreSQL is up and that its user may create databases',
      { cause },
    );
  }
}
