/**
 * `onceflow schedules list`: a tenant's scheduled operations, through the
 * schedules repository. `onceflow schedules create`: the use case behind
 * POST /v1/schedules, for an operator acting for a tenant (same key rules,
 * same validation, same Temporal Schedule).
 */
import { Command, Option } from 'commander';
import { listSchedules } from '../../schedules/repository';
import { createSchedule } from '../../schedules/service';
import { describeSpec, OverlapPolicies, scheduleSpecSchema } from '../../schedules/spec';
import { connectTemporalClient } from '../../temporal/client';
import { tenantExists } from '../../tenants/api-keys';
import { jsonObject, positiveInt, runCommand, withJson, withPool } from '../context';
import { CliError, ExitCode } from '../errors';

interface CreateOptions {
  tenant: string;
  key: string;
  type: string;
  input: Record<string, unknown>;
  cron?: string;
  every?: number;
  timeZone?: string;
  catchupWindow?: number;
  overlap?: (typeof OverlapPolicies)[number];
  paused?: boolean;
  json?: boolean;
}

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
  withJson(
    schedules
      .command('create')
      .description('create a schedule for a tenant, as its POST /v1/schedules does (a repeat with the same --key returns the first)')
      .requiredOption('--tenant <tenant>', 'the tenant the schedule and its operations belong to')
      .requiredOption('--key <key>', 'the create request\'s own Idempotency-Key')
      .requiredOption('--type <type>', 'the operation type each slot starts, e.g. generate-content')
      .requiredOption('--input <json>', 'the operation input as JSON', jsonObject('--input'))
      .option('--cron <expr>', 'cron expression, e.g. "0 9 * * MON-FRI" (or --every)')
      .option('--every <seconds>', 'one slot every N seconds (or --cron)', positiveInt('--every'))
      .option('--time-zone <zone>', 'IANA time zone of --cron (default UTC)')
      .option('--catchup-window <seconds>', 'a slot missed in an outage still runs within this many seconds (default 3600)', positiveInt('--catchup-window'))
      .addOption(new Option('--overlap <policy>', 'what a slot does while an earlier slot\'s operation runs (default allow_all)').choices(OverlapPolicies))
      .option('--paused', 'create it paused'),
  ).action((options: CreateOptions) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const spec = scheduleSpecSchema.safeParse({
          ...(options.cron !== undefined ? { cron: options.cron } : {}),
          ...(options.every !== undefined ? { intervalSeconds: options.every } : {}),
          ...(options.timeZone !== undefined ? { timeZone: options.timeZone } : {}),
          ...(options.catchupWindow !== undefined ? { catchupWindowSeconds: options.catchupWindow } : {}),
          ...(options.overlap !== undefined ? { overlap: options.overlap } : {}),
        });
        if (!spec.success) throw new CliError(`invalid schedule: ${spec.error.issues.map((issue) => issue.message).join('; ')}`, ExitCode.Usage);
        if (!(await tenantExists(pool, options.tenant))) throw new CliError(`no tenant "${options.tenant}"`, ExitCode.NotFound);
        const config = context.config;
        const temporal = await connectTemporalClient({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, compression: config.TEMPORAL_GRPC_COMPRESSION });
        try {
          const result = await createSchedule(
            { pool, temporal, taskQueue: config.TEMPORAL_TASK_QUEUE, allowedModels: config.GEMINI_ALLOWED_MODELS },
            { tenantId: options.tenant, idempotencyKey: options.key, operationType: options.type, input: options.input, spec: spec.data, paused: options.paused ?? false },
          );
          switch (result.kind) {
            case 'unknown-type':
              throw new CliError(`unknown operation type "${result.type}" (known: ${result.knownTypes.join(', ')})`, ExitCode.Usage);
            case 'invalid-input':
              throw new CliError(`invalid schedule: ${result.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`, ExitCode.Usage);
            case 'key-reused':
              throw new CliError(`the key "${options.key}" already created schedule ${result.schedule.scheduleId} with another request`, ExitCode.Usage);
          }
          const { schedule } = result;
          if (context.json) return context.out.json({ created: result.kind === 'created', scheduleId: schedule.scheduleId, tenantId: schedule.tenantId, operationType: schedule.operationType, spec: schedule.spec, paused: schedule.paused });
          context.out.line(`${result.kind === 'created' ? 'created' : 'already created'}: schedule ${schedule.scheduleId} (${schedule.operationType}, ${describeSpec(schedule.spec)}${schedule.paused ? ', paused' : ''})`);
        } finally {
          await temporal.connection.close();
        }
      }),
    ),
  );
  return schedules;
}

