/**
 * Scheduled operations, as use cases: create (idempotent by the request's own
 * key), read, list, change (pause, resume, spec), delete and backfill. Each
 * returns a discriminated union the HTTP route and the CLI map to their own
 * answers; nothing here knows Fastify.
 */
import { randomUUID } from 'node:crypto';
import { type Client, isGrpcServiceError, ScheduleAlreadyRunning, ScheduleNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import { fingerprint } from '../idempotency/fingerprint';
import { findOperationType, inputSchemaAllowing, operationTypeNames } from '../operations/registry';
import type { InputIssue } from '../doors/start-operation';
import { deleteScheduleRow, findSchedule, insertSchedule, listSchedules, markScheduleDeleted, updateSchedule, type ScheduleCursor, type ScheduleRow } from './repository';
import { scheduleSlotKey } from './slot-key';
import type { ScheduleSpecInput } from './spec';
import { scheduleSummary, slotInput, temporalScheduleId, temporalScheduleOptions } from './temporal';
import { toTemporalPolicies, toTemporalSpec } from './spec';
import { AppError, messageOf } from '../errors';

export interface ScheduleServiceDeps {
  pool: Pick<pg.Pool, 'query'>;
  temporal: Client;
  /** The operations' task queue (TEMPORAL_TASK_QUEUE): slot runs and their operations run there. */
  taskQueue: string;
  /** GEMINI_ALLOWED_MODELS: a schedule's `model` must be on it, as over HTTP (its slots are not checked again). */
  allowedModels: readonly string[];
}

export interface CreateScheduleRequest {
  tenantId: string;
  /** The create request's own Idempotency-Key. */
  idempotencyKey: string;
  operationType: string;
  input: unknown;
  spec: ScheduleSpecInput;
  paused: boolean;
}

/** Temporal's live view of a schedule, when it answered. */
export interface ScheduleLiveState {
  paused: boolean;
  nextSlots: Date[];
  /** The most recent slots Temporal ran (up to 10), with the key each one's operation has. */
  recentSlots: { nominalTime: Date; startedAt: Date; idempotencyKey: string }[];
}

export type ScheduleView = ScheduleRow & { live?: ScheduleLiveState };

export type CreateScheduleResult =
  | { kind: 'created'; schedule: ScheduleView }
  | { kind: 'existing'; schedule: ScheduleView }
  | { kind: 'key-reused'; schedule: ScheduleRow }
  | { kind: 'unknown-type'; type: string; knownTypes: readonly string[] }
  | { kind: 'invalid-input'; issues: InputIssue[] };

/** Temporal refused the spec (a cron expression it cannot parse): nothing was created. */
export class InvalidScheduleSpecError extends AppError {
  override readonly name = 'InvalidScheduleSpecError';
  constructor(options: { cause: unknown }) {
    super(`Temporal refused the schedule spec: ${messageOf(options.cause)}`, { context: {}, cause: options.cause });
  }
}

export async function createSchedule(deps: ScheduleServiceDeps, request: CreateScheduleRequest): Promise<CreateScheduleResult> {
  const definition = findOperationType(request.operationType);
  if (!definition) return { kind: 'unknown-type', type: request.operationType, knownTypes: operationTypeNames };
  const parsed = inputSchemaAllowing(definition, deps.allowedModels).safeParse(request.input);
  if (!parsed.success) return { kind: 'invalid-input', issues: parsed.error.issues.map((issue) => ({ path: `/input/${issue.path.join('/')}`, message: issue.message })) };
  const input = parsed.data;
  const requestFingerprint = fingerprint({ operationType: definition.name, input, spec: request.spec, paused: request.paused }, []);
  const { row, inserted } = await insertSchedule(deps.pool, {
    scheduleId: `sch_${randomUUID()}`,
    tenantId: request.tenantId,
    idempotencyKey: request.idempotencyKey,
    fingerprint: requestFingerprint,
    operationType: definition.name,
    input,
    spec: request.spec,
    paused: request.paused,
  });
  if (!inserted && row.fingerprint !== requestFingerprint) return { kind: 'key-reused', schedule: row };
  if (row.deletedAt) return { kind: 'existing', schedule: row };
  // If the process died after the insert, the Temporal Schedule may not exist
  // yet: every repeat of the create makes sure it does (an existing one is
  // left as it is, including changes made since by PATCH).
  try {
    await ensureTemporalSchedule(deps, row);
  } catch (error) {
    if (!isInvalidArgument(error)) throw error;
    // The cron expression is only parsed by Temporal: take the key back, so
    // the caller can fix the spec and send the same request again.
    if (inserted) await deleteScheduleRow(deps.pool, row.scheduleId);
    return { kind: 'invalid-input', issues: [{ path: '/spec/cron', message: (error as Error).message }] };
  }
  return { kind: inserted ? 'created' : 'existing', schedule: await withLiveState(deps, row) };
}

async function ensureTemporalSchedule(deps: ScheduleServiceDeps, row: ScheduleRow): Promise<void> {
  try {
    await deps.temporal.schedule.create(temporalScheduleOptions(row, deps.taskQueue));
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
  }
}

export async function getSchedule(deps: ScheduleServiceDeps, tenantId: string, scheduleId: string): Promise<ScheduleView | undefined> {
  const row = await findSchedule(deps.pool, tenantId, scheduleId);
  return row && withLiveState(deps, row);
}

/** Adds Temporal's view (paused, next and recent slots); without it when the Schedule is missing. */
async function withLiveState(deps: ScheduleServiceDeps, row: ScheduleRow): Promise<ScheduleView> {
  try {
    const description = await deps.temporal.schedule.getHandle(temporalScheduleId(row.tenantId, row.scheduleId)).describe();
    return {
      ...row,
      live: {
        paused: description.state.paused,
        nextSlots: description.info.nextActionTimes,
        recentSlots: description.info.recentActions.map((action) => ({
          nominalTime: action.scheduledAt,
          startedAt: action.takenAt,
          idempotencyKey: scheduleSlotKey(row.scheduleId, action.scheduledAt.getTime()),
        })),
      },
    };
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) return row;
    throw error;
  }
}

export async function listTenantSchedules(deps: ScheduleServiceDeps, options: { tenantId: string; limit: number; cursor?: string }): Promise<{ data: ScheduleRow[]; nextCursor: string | null } | { kind: 'invalid-cursor' }> {
  let after: ScheduleCursor | undefined;
  if (options.cursor) {
    after = decodeCursor(options.cursor);
    if (!after) return { kind: 'invalid-cursor' };
  }
  const rows = await listSchedules(deps.pool, { tenantId: options.tenantId, limit: options.limit + 1, after });
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return { data: page, nextCursor: rows.length > options.limit && last ? encodeCursor({ createdAt: last.createdAt, scheduleId: last.scheduleId }) : null };
}

export interface ChangeScheduleRequest {
  paused?: boolean;
  spec?: ScheduleSpecInput;
}

/**
 * Temporal first, then the row: if the process dies between the two, Temporal
 * (which runs the slots) already has the change, and GET reads `paused` from
 * Temporal; repeating the PATCH brings the row in line.
 */
export async function changeSchedule(deps: ScheduleServiceDeps, tenantId: string, scheduleId: string, change: ChangeScheduleRequest): Promise<ScheduleView | undefined> {
  const row = await findSchedule(deps.pool, tenantId, scheduleId);
  if (!row) return undefined;
  const handle = deps.temporal.schedule.getHandle(temporalScheduleId(tenantId, scheduleId));
  if (change.spec) {
    const spec = change.spec;
    const summary = scheduleSummary({ ...row, spec });
    try {
      await handle.update((previous) => ({
        ...previous,
        action: previous.action.type === 'startWorkflow' ? { ...previous.action, args: [slotInput({ ...row, spec })] } : previous.action,
        spec: toTemporalSpec(spec),
        policies: { ...previous.policies, ...toTemporalPolicies(spec) },
        state: { ...previous.state, note: summary },
      }));
    } catch (error) {
      throw isInvalidArgument(error) ? new InvalidScheduleSpecError({ cause: error }) : error;
    }
  }
  if (change.paused === true) await handle.pause(`paused by tenant ${tenantId}`);
  if (change.paused === false) await handle.unpause(`resumed by tenant ${tenantId}`);
  const updated = await updateSchedule(deps.pool, tenantId, scheduleId, change);
  return updated && withLiveState(deps, updated);
}

/** Deletes the Temporal Schedule, then marks the row; slots already started keep running as ordinary operations. */
export async function deleteSchedule(deps: ScheduleServiceDeps, tenantId: string, scheduleId: string): Promise<boolean> {
  const row = await findSchedule(deps.pool, tenantId, scheduleId);
  if (!row) return false;
  try {
    await deps.temporal.schedule.getHandle(temporalScheduleId(tenantId, scheduleId)).delete();
  } catch (error) {
    if (!(error instanceof ScheduleNotFoundError)) throw error;
  }
  return markScheduleDeleted(deps.pool, tenantId, scheduleId);
}

/** Runs the slots whose nominal times fall in [start, end) now; slots that already ran find their operation and start nothing. */
export async function backfillSchedule(deps: ScheduleServiceDeps, tenantId: string, scheduleId: string, range: { start: Date; end: Date }): Promise<boolean> {
  const row = await findSchedule(deps.pool, tenantId, scheduleId);
  if (!row) return false;
  await deps.temporal.schedule.getHandle(temporalScheduleId(tenantId, scheduleId)).backfill({ start: range.start, end: range.end, overlap: 'ALLOW_ALL' });
  return true;
}

/**
 * Temporal's answer to a spec it cannot parse: gRPC INVALID_ARGUMENT (3),
 * which the SDK's schedule client rethrows as a TypeError with the server's
 * message ("CronString does not have 5-7 fields").
 */
function isInvalidArgument(error: unknown): boolean {
  if (error instanceof TypeError) return true;
  return isGrpcServiceError(error) ? error.code === 3 : (error as { code?: unknown } | undefined)?.code === 3 || (error as { cause?: { code?: unknown } } | undefined)?.cause?.code === 3;
}

function encodeCursor(cursor: ScheduleCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt.toISOString(), cursor.scheduleId])).toString('base64url');
}

function decodeCursor(raw: string): ScheduleCursor | undefined {
  try {
    const [createdAt, scheduleId] = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as [string, string];
    const date = new Date(createdAt);
    // Only what encodeCursor can have written reaches SQL (a NUL or a year PostgreSQL refuses would be a 500).
    if (typeof scheduleId !== 'string' || !/^sch_[0-9a-f-]{36}$/.test(scheduleId) || Number.isNaN(date.getTime())) return undefined;
    if (date.getUTCFullYear() < 2000 || date.getUTCFullYear() > 9999) return undefined;
    return { createdAt: date, scheduleId };
  } catch {
    return undefined;
  }
}
