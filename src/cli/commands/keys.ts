/** `onceflow keys purge`: delete expired, finished operations so their keys are gone for good. */
import { Command } from 'commander';
import { PostgresOperationsRepository } from '../../operations/repository';
import { positiveInt, runCommand, withJson, withPool } from '../context';

export function keysCommand(): Command {
  const keys = new Command('keys').description('idempotency keys');

  withJson(
    keys
      .command('purge')
      .description('delete operations whose key has expired and that have finished (running ones are kept)')
      .option('--tenant <tenant>', 'only this tenant')
      .option('--dry-run', 'count what would be purged, delete nothing')
      .option('--batch-size <n>', 'rows per DELETE statement', positiveInt('--batch-size'), 1000),
  ).action((options: { tenant?: string; dryRun?: boolean; batchSize: number; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const operations = new PostgresOperationsRepository(pool);
        const { finished, running } = await operations.countExpiredNow({ tenantId: options.tenant });
        const purged = options.dryRun ? 0 : await operations.purgeExpiredNow({ tenantId: options.tenant, batchSize: options.batchSize });
        const result = { dryRun: options.dryRun === true, purged, expiredFinished: finished, expiredStillRunning: running };
        if (context.json) return context.out.json(result);
        context.out.line(
          options.dryRun
            ? `would purge ${finished} expired finished operation${finished === 1 ? '' : 's'}`
            : `purged ${purged} expired finished operation${purged === 1 ? '' : 's'}`,
        );
        if (running > 0) context.out.line(`kept ${running} expired operation${running === 1 ? '' : 's'} that still run${running === 1 ? 's' : ''}`);
      }),
    ),
  );

  return keys;
}
