/** `onceflow schedules list`: a tenant's scheduled operations, through the schedules repository. */
import { Command } from 'commander';
import { listSchedules } from '../../schedules/repository';
import { describeSpec } from '../../schedules/spec';
import { positiveInt, runCommand, withJson, withPool } from '../context';

export function schedulesCommand(): Command {
  const schedules = new Command('schedules').description('scheduled operations (POST /v1/schedules)');
  withJson(
    schedules
      .command('list')
      .description('list a tenant’s schedules, newest first')
      .requiredOption('--tenant <tenant>', 'the tenant')
      .option('--limit <n>', 'at most this many', positiveInt('--limit'), 100),
  ).action((options: { tenant: string; limit: number; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const rows = await listSchedules(pool, { tenantId: options.tenant, limit: options.limit });
        if (context.json) return context.out.json(rows);
        context.out.table(
          rows.map((row) => ({ id: row.scheduleId, type: row.operationType, spec: describeSpec(row.spec), state: row.paused ? 'paused' : 'active', createdAt: row.createdAt.toISOString() })),
          [
            { key: 'id', header: 'SCHEDULE' },
            { key: 'type', header: 'TYPE' },
            { key: 'spec', header: 'SPEC', maxWidth: 70 },
            { key: 'state', header: 'STATE' },
            { key: 'createdAt', header: 'CREATED' },
          ],
        );
      }),
    ),
  );
  return schedules;
}
