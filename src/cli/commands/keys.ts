/** `onceflow keys purge`: delete expired, finished operations so their keys are gone for good. */
import { Command } from 'commander';
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
        const params: unknown[] = [];
        // PostgreSQL's clock, not this machine's: the same one the API compares expires_at against at reservation.
        const scope = `expires_at <= now()${options.tenant ? ` AND tenant_id = $${params.push(options.tenant)}` : ''}`;
        const { rows } = await pool.query<{ finished: number; running: number }>(
          `SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed'))::int AS finished,
                  count(*) FILTER (WHERE status IN ('reserved', 'running'))::int AS running
             FROM operations WHERE ${scope}`,
          params,
        );
        const { finished, running } = rows[0]!;
        let purged = 0;
        if (!options.dryRun) {
          // Small batches keep each DELETE's locks short next to live traffic. A
          // running operation is never purged even when expired: its workflow
          // still has to record its outcome on this row.
          for (;;) {
            const { rowCount } = await pool.query(
              `DELETE FROM operations WHERE ctid IN (
                 SELECT ctid FROM operations WHERE ${scope} AND status IN ('succeeded', 'failed') LIMIT ${options.batchSize})`,
              params,
            );
            purged += rowCount ?? 0;
            if ((rowCount ?? 0) < options.batchSize) break;
          }
        }
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
