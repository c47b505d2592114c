/** `onceflow outbox pending|dead-letters|replay`: the outgoing event queue, through the outbox module's own queries. */
import { Command } from 'commander';
import { countPending, listDeadLetters, MAX_DEAD_LETTERS_PER_CALL, replayDeadLetters, type DeadLetterFilter } from '../../outbox/dead-letters';
import { positiveInt, runCommand, withJson, withPool } from '../context';
import { CliError, ExitCode } from '../errors';
import { formatDuration } from '../output';

interface FilterOptions {
  tenant?: string;
  subscription?: string;
  event?: string;
}

function toFilter(options: FilterOptions & { limit?: number }): DeadLetterFilter {
  return { tenantId: options.tenant, subscriptionId: options.subscription, eventId: options.event, limit: options.limit };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkSubscription(options: FilterOptions): void {
  // subscription_id is a uuid column: anything else would be a database error, not "no rows".
  if (options.subscription && !UUID.test(options.subscription)) throw new CliError(`--subscription must be a subscription id (a UUID), got "${options.subscription}"`, ExitCode.Usage);
}

export function outboxCommand(): Command {
  const outbox = new Command('outbox').description('outgoing events: pending deliveries and dead letters');

  withJson(outbox.command('pending').description('count deliveries still waiting to reach their subscriber')).action((options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const pending = await countPending(pool);
        if (context.json) return context.out.json(pending);
        context.out.line(
          pending.pending === 0
            ? 'no pending deliveries'
            : `${pending.pending} pending deliver${pending.pending === 1 ? 'y' : 'ies'}, oldest ${formatDuration(pending.oldestAgeSeconds * 1000)} old`,
        );
      }),
    ),
  );

  withJson(
    outbox
      .command('dead-letters')
      .description('list deliveries that ran out of attempts')
      .option('--tenant <tenant>', 'only this tenant')
      .option('--subscription <id>', 'only this subscription')
      .option('--event <id>', 'only this event id')
      .option('--limit <n>', `at most this many (at most ${MAX_DEAD_LETTERS_PER_CALL})`, positiveInt('--limit'), 100),
  ).action((options: FilterOptions & { limit: number; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        checkSubscription(options);
        const { data: letters } = await listDeadLetters(pool, toFilter(options));
        if (context.json) return context.out.json(letters);
        context.out.table(letters as unknown as Record<string, unknown>[], [
          { key: 'eventId', header: 'EVENT', maxWidth: 70 },
          { key: 'eventType', header: 'TYPE' },
          { key: 'tenantId', header: 'TENANT' },
          { key: 'subscriptionId', header: 'SUBSCRIPTION' },
          { key: 'attempts', header: 'ATTEMPTS' },
          { key: 'createdAt', header: 'CREATED' },
          { key: 'lastError', header: 'LAST ERROR', maxWidth: 80 },
        ]);
      }),
    ),
  );

  withJson(
    outbox
      .command('replay')
      .description('put dead letters back in the queue with a fresh attempt budget (same webhook-id); needs a filter or --all')
      .option('--tenant <tenant>', 'only this tenant')
      .option('--subscription <id>', 'only this subscription')
      .option('--event <id>', 'only this event id')
      .option('--all', 'every dead letter'),
  ).action((options: FilterOptions & { all?: boolean; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        if (!options.all && !options.tenant && !options.subscription && !options.event) {
          throw new CliError('say what to replay: --event, --subscription, --tenant, or --all', ExitCode.Usage);
        }
        checkSubscription(options);
        // Bounded calls (MAX_DEAD_LETTERS_PER_CALL each), so replaying a large
        // backlog never holds one huge UPDATE's locks; the operator's command loops.
        let replayed = 0;
        for (let more = true; more; ) {
          const call = await replayDeadLetters(pool, { ...toFilter(options), limit: MAX_DEAD_LETTERS_PER_CALL });
          replayed += call.replayed;
          more = call.more && call.replayed > 0;
        }
        if (context.json) return context.out.json({ replayed });
        context.out.line(`replayed ${replayed} dead letter${replayed === 1 ? '' : 's'}`);
        return replayed === 0 && options.event ? ExitCode.NotFound : ExitCode.Ok;
      }),
    ),
  );

  return outbox;
}
