/**
 * `onceflow ops get|list|watch|cancel`: operations as the database holds them, for
 * operators (across tenants; the HTTP API is per tenant).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Queryable } from '../../db/pool';
import { createCancelOperation } from '../../operations/cancel';
import { createRunCanceller } from '../../operations/canceller';
import { PostgresOperationsRepository, type OperatorFilter, type OperatorView } from '../../operations/repository';
import { createReservationResumer } from '../../operations/resume';
import { createOperationStarter } from '../../operations/starter';
import { isFinal, operationStatuses, type OperationStatus } from '../../operations/status';
import { connectTemporalClient, temporalUiLink } from '../../temporal/client';
import { positiveInt, runCommand, withJson, withPool, type CommandContext } from '../context';
import { CliError, ExitCode } from '../errors';
import { formatDuration, type Column } from '../output';

type OperationRow = OperatorView;

const STATUSES = operationStatuses;

function findOperations(db: Queryable, filter: OperatorFilter): Promise<OperationRow[]> {
  return new PostgresOperationsRepository(db).listForOperator(filter);
}

function isTerminal(status: OperationStatus): boolean {
  return isFinal(status);
}

function elapsedMs(row: OperationRow, nowMs: number): number {
  return (row.completedAt?.getTime() ?? nowMs) - row.createdAt.getTime();
}

const listColumns: Column[] = [
  { key: 'tenantId', header: 'TENANT', maxWidth: 24 },
  { key: 'operationType', header: 'TYPE' },
  { key: 'idempotencyKey', header: 'KEY', maxWidth: 40 },
  { key: 'status', header: 'STATUS' },
  { key: 'createdAt', header: 'CREATED' },
  { key: 'elapsed', header: 'DURATION' },
  { key: 'expiresAt', header: 'EXPIRES' },
  { key: 'steps', header: 'STEPS', format: (v) => String((v as string[]).length) },
  { key: 'workflowId', header: 'WORKFLOW ID', maxWidth: 80 },
];

function parseTime(flag: string) {
  return (value: string): Date => {
    const time = new Date(value);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(time.getTime())) throw new InvalidArgumentError(`${flag} takes an RFC 3339 time such as 2026-12-05T10:00:00Z`);
    return time;
  };
}

const statusOption = () =>
  new Option('--status <status>', 'running (includes reserved), reserved, succeeded, failed or canceled').choices(STATUSES);

/** Exactly one operation for a key, or exit 3 (none) / 2 (several: narrow it down). */
async function findOne(db: Queryable, key: string, filter: OperatorFilter): Promise<OperationRow> {
  const rows = await findOperations(db, { ...filter, idempotencyKey: key, limit: 10 });
  if (rows.length === 0) {
    throw new CliError(`no operation has the key "${key}"${filter.tenantId ? ` for tenant ${filter.tenantId}` : ''}${filter.operationType ? ` and type ${filter.operationType}` : ''}`, ExitCode.NotFound);
  }
  if (rows.length > 1) {
    const where = rows.map((r) => `${r.tenantId}/${r.operationType}`).join(', ');
    throw new CliError(`${rows.length} operations have the key "${key}" (${where}); add --tenant and/or --type`, ExitCode.Usage);
  }
  return rows[0]!;
}

function printOperation(context: CommandContext, row: OperationRow): void {
  const ui = temporalUiLink(context.config.TEMPORAL_UI_URL, context.config.TEMPORAL_NAMESPACE, row.workflowId, row.runId);
  if (context.json) return context.out.json({ ...row, temporalUi: ui });
  context.out.fields([
    ['tenant', row.tenantId],
    ['type', row.operationType],
    ['key', row.idempotencyKey],
    ['status', row.released ? `${row.status} (key released: the next request starts a new run)` : row.status],
    ['operation id', row.operationId],
    ['workflow id', row.workflowId],
    ['run id', row.runId],
    ['created', row.createdAt],
    ['completed', row.completedAt],
    ['duration', formatDuration(elapsedMs(row, Date.now()))],
    ['first seen', new Date(row.firstSeenMs)],
    ['expires', row.expiresAt],
    ['steps done', row.steps.join(', ')],
    ['error', row.error],
    ['result', row.result === null || row.result === undefined ? null : JSON.stringify(row.result).slice(0, 400)],
    ['temporal ui', ui],
  ]);
}

function progressLine(row: OperationRow, nowMs: number): string {
  const steps = row.steps.length ? ` · ${row.steps.length} step${row.steps.length === 1 ? '' : 's'} done (last: ${row.steps[row.steps.length - 1]})` : '';
  return `${row.tenantId}/${row.operationType}/${row.idempotencyKey}: ${row.status} ${formatDuration(elapsedMs(row, nowMs))}${steps}`;
}

export function opsCommand(): Command {
  const ops = new Command('ops').description('inspect operations (across tenants)');

  withJson(
    ops
      .command('get')
      .description('show one operation by its idempotency key (exit 3 if none)')
      .argument('<key>', 'the Idempotency-Key')
      .option('--tenant <tenant>', 'tenant id')
      .option('--type <type>', 'operation type'),
  ).action((key: string, options: { tenant?: string; type?: string; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        printOperation(context, await findOne(pool, key, { tenantId: options.tenant, operationType: options.type }));
      }),
    ),
  );

  withJson(
    ops
      .command('list')
      .description('list operations, newest first')
      .option('--tenant <tenant>', 'tenant id')
      .option('--type <type>', 'operation type')
      .addOption(statusOption())
      .option('--key <key>', 'idempotency key')
      .option('--created-after <time>', 'only operations created after this RFC 3339 time', parseTime('--created-after'))
      .option('--created-before <time>', 'only operations created before this RFC 3339 time', parseTime('--created-before'))
      .option('--limit <n>', 'at most this many rows', positiveInt('--limit'), 50),
  ).action((options: { tenant?: string; type?: string; status?: OperationStatus; key?: string; createdAfter?: Date; createdBefore?: Date; limit: number; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const rows = await findOperations(pool, {
          tenantId: options.tenant,
          operationType: options.type,
          status: options.status,
          idempotencyKey: options.key,
          createdAfter: options.createdAfter,
          createdBefore: options.createdBefore,
          limit: options.limit,
        });
        if (context.json) return context.out.json(rows);
        const nowMs = Date.now();
        context.out.table(
          rows.map((r) => ({ ...r, elapsed: formatDuration(elapsedMs(r, nowMs)) })),
          listColumns,
        );
      }),
    ),
  );

  withJson(
    ops
      .command('watch')
      .description('follow an operation with a progress line until it finishes (exit 0 succeeded, 1 failed or canceled, 3 not found, 4 timed out)')
      .argument('<key>', 'the Idempotency-Key')
      .option('--tenant <tenant>', 'tenant id')
      .option('--type <type>', 'operation type')
      .option('--interval <ms>', 'poll interval in ms', positiveInt('--interval'), 500)
      .option('--timeout <seconds>', 'give up after this long (default: never)', positiveInt('--timeout')),
  ).action((key: string, options: { tenant?: string; type?: string; interval: number; timeout?: number; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const filter = { tenantId: options.tenant, operationType: options.type };
        let row = await findOne(pool, key, filter);
        // Pin the exact row: a later expiry and reuse of the key must not switch what we follow.
        const pinned = { tenantId: row.tenantId, operationType: row.operationType };
        const startedMs = Date.now();
        const tty = process.stdout.isTTY === true && !context.json;
        let lastState = '';
        for (;;) {
          const line = progressLine(row, Date.now());
          const state = `${row.status}|${row.steps.length}`;
          if (!context.json) {
            if (tty) process.stdout.write(`\r\x1b[2K${line}`);
            // Not a terminal (a log, a pipe): one line per change, not per poll.
            else if (state !== lastState) context.out.line(line);
          }
          lastState = state;
          if (isTerminal(row.status)) break;
          if (options.timeout !== undefined && Date.now() - startedMs >= options.timeout * 1000) {
            if (tty) process.stdout.write('\n');
            if (context.json) context.out.json(row);
            throw new CliError(`still ${row.status} after ${options.timeout}s`, ExitCode.TimedOut);
          }
          await new Promise((resolve) => setTimeout(resolve, options.interval));
          const next = await findOperations(pool, { ...pinned, idempotencyKey: key, limit: 1 });
          if (!next[0] || next[0].operationId !== row.operationId) {
            if (tty) process.stdout.write('\n');
            throw new CliError(`the operation with key "${key}" is gone (purged, or its key was reused after expiry)`, ExitCode.NotFound);
          }
          row = next[0];
        }
        if (tty) process.stdout.write('\n');
        if (context.json) context.out.json(row);
        else if (row.status !== 'succeeded') context.out.line(`${row.status}: ${JSON.stringify(row.error)}`);
        return row.status === 'succeeded' ? ExitCode.Ok : ExitCode.Failure;
      }),
    ),
  );

  withJson(
    ops
      .command('cancel')
      .description('cancel a running operation, as its tenant\'s POST …/cancel does (exit 0 requested or already final, 3 not found)')
      .argument('<type>', 'operation type, e.g. generate-content')
      .argument('<key>', 'the Idempotency-Key')
      .option('--tenant <tenant>', 'tenant id (needed when several tenants used the key)'),
  ).action((type: string, key: string, options: { tenant?: string; json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const row = await findOne(pool, key, { tenantId: options.tenant, operationType: type });
        const config = context.config;
        const temporal = await connectTemporalClient({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, compression: config.TEMPORAL_GRPC_COMPRESSION });
        try {
          const store = new PostgresOperationsRepository(pool);
          // The facade's own use case: the same answers, and the same one path for a reservation never started.
          const startOperation = createOperationStarter({ temporal, store, taskQueue: config.TEMPORAL_TASK_QUEUE, modelChain: config.GEMINI_MODELS });
          const cancel = createCancelOperation({
            operations: store,
            cancelRun: createRunCanceller({ temporal }),
            resumeReservation: createReservationResumer({ operations: store, startOperation, clock: Date.now }),
            clock: Date.now,
          });
          const result = await cancel({ tenantId: row.tenantId, operationType: row.operationType, idempotencyKey: row.idempotencyKey });
          if (result.kind === 'notFound') throw new CliError(`the operation with key "${key}" has expired`, ExitCode.NotFound);
          const outcome = result.kind === 'requested' ? 'requested' : 'already-final';
          if (context.json) return context.out.json({ cancel: outcome, status: result.record.status, tenantId: row.tenantId, operationType: row.operationType, idempotencyKey: row.idempotencyKey, workflowId: row.workflowId });
          context.out.line(
            result.kind === 'requested'
              ? `cancel requested: ${row.tenantId}/${row.operationType}/${row.idempotencyKey} stops at its next step and ends canceled (follow it with \`onceflow ops watch ${row.idempotencyKey}\`)`
              : `nothing to cancel: ${row.tenantId}/${row.operationType}/${row.idempotencyKey} is already ${result.record.status}`,
          );
        } finally {
          await temporal.connection.close();
        }
      }),
    ),
  );

  return ops;
}
