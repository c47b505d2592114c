/**
 * The `onceflow` operator CLI. Exit codes: 0 ok, 1 failure, 2 usage or
 * configuration error, 3 not found.
 */
import { Command } from 'commander';
import { loadConfig } from '../config';
import { migrate } from '../db/migrate';
import { createPool } from '../db/pool';
import { runLocalStack } from '../dev/supervisor';
import { requireDatabaseUrl, runEntrypoint } from '../process/entrypoint';

const program = new Command('onceflow').description('Idempotent AI operations on Temporal and PostgreSQL').showHelpAfterError();

program
  .command('start')
  .description('run the whole local system on embedded defaults (PostgreSQL, Temporal dev server + UI, api, worker, relay)')
  .action(() =>
    runEntrypoint('start', async ({ stopped }) => {
      await runLocalStack(loadConfig(), { stopSignal: stopped });
    }),
  );

program
  .command('migrate')
  .description('apply pending database migrations (DATABASE_URL)')
  .action(() =>
    runEntrypoint('migrate', async () => {
      const pool = createPool({ connectionString: requireDatabaseUrl(loadConfig()), max: 2 });
      try {
        const { applied } = await migrate(pool);
        process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'schema up to date\n');
      } finally {
        await pool.end();
      }
    }),
  );

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`onceflow: ${(error as Error).message}\n`);
  process.exit(2);
});
