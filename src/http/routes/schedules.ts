import type { Client } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { checkIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, rawHeaderValues } from '../../idempotency/key';
import { operationPath } from '../../operations/resource';
import type { ScheduleRow } from '../../schedules/repository';
import { backfillSchedule, changeSchedule, createSchedule, deleteSchedule, getSchedule, InvalidScheduleSpecError, listTenantSchedules, type ScheduleView } from '../../schedules/service';
import { scheduleSpecSchema } from '../../schedules/spec';
import { scheduleSlotKey } from '../../schedules/slot-key';
import { temporalScheduleId } from '../../schedules/temporal';
import { requireTenant } from '../auth';
import { problems } from '../problems';
import { problemResponses } from '../schemas';

export interface ScheduleRoutesOptions {
  pool: pg.Pool;
  temporal: Client;
  /** TEMPORAL_TASK_QUEUE: where slot runs and their operations run. */
  taskQueue: string;
  /** GEMINI_ALLOWED_MODELS. */
  allowedModels: readonly string[];
  temporalUi: { baseUrl: string; namespace: string };
}

const scheduleId = z.string().regex(/^sch_[0-9a-f-]{36}$/, 'a schedule id (sch_…)');
const idParams = z.object({ id: scheduleId });

const scheduleResource = z.object({
  id: z.string(),
  operationType: z.string(),
  input: z.unknown(),
  spec: z.looseObject({}),
  state: z.enum(['active', 'paused', 'deleted']),
  createdAt: z.string(),
  updatedAt: z.string(),
  nextSlots: z.array(z.string()).optional().describe('nominal times of the next slots, from Temporal'),
  recentSlots: z
    .array(z.object({ nominalTime: z.string(), startedAt: z.string(), idempotencyKey: z.string(), operation: z.string() }))
    .optional()
    .describe('the latest slots Temporal ran, each with the key and path of its operation'),
  links: z.object({ self: z.string(), temporalUi: z.string() }),
});

const keyHeaders = z
  .object({ 'idempotency-key': z.string().optional().describe(`the create request's own key, 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`) })
  .meta({ required: ['idempotency-key'] });

const errors = problemResponses(400, 401, 404, 429, 503);


/**
 * Scheduled operations (inside the authenticated /v1 scope). Each slot of a
 * schedule starts one ordinary operation whose key is derived from the
 * schedule id and the slot's nominal time (src/schedules/slot-key.ts).
 */
export const scheduleRoutes: FastifyPluginAsyncZod<ScheduleRoutesOptions> = async (app, options) => {
  const deps = { pool: options.pool, temporal: options.temporal, taskQueue: options.taskQueue, allowedModels: options.allowedModels };
  const toResource = (row: ScheduleView | ScheduleRow) => resource(row, options.temporalUi);

  app.post(
    '/v1/schedules',
    {
      schema: {
        summary: 'Create a schedule that starts one operation per slot (idempotent by its own Idempotency-Key)',
        tags: ['schedules'],
        headers: keyHeaders,
        body: z
          .object({
            operationType: z.string().min(1).max(100),
            input: z.unknown(),
            spec: scheduleSpecSchema,
            paused: z.boolean().default(false),
          })
          .strict(),
        response: { 200: scheduleResource, 201: scheduleResource, ...problemResponses(400, 401, 404, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const tenantId = requireTenant(request);
      const key = checkIdempotencyKey(rawHeaderValues(request.raw.rawHeaders, 'idempotency-key'));
      if (!key.ok) {
        throw key.reason === 'missing'
          ? problems.scheduleKeyMissing()
          : problems.keyInvalid(undefined, key.detail);
      }
      const result = await createSchedule(deps, { tenantId, idempotencyKey: key.key, ...request.body });
      switch (result.kind) {
        case 'unknown-type':
          throw problems.unknownType(result.type, result.knownTypes);
        case 'invalid-input':
          throw problems.invalidRequest('the input or the spec is not acceptable; nothing was created', result.issues);
        case 'key-reused':
          throw problems.scheduleKeyReused(key.key, result.schedule.scheduleId);
        case 'created':
          return reply.code(201).header('Location', `/v1/schedules/${result.schedule.scheduleId}`).send(toResource(result.schedule));
        case 'existing':
          return reply.code(200).header('Idempotent-Replayed', 'true').header('Location', `/v1/schedules/${result.schedule.scheduleId}`).send(toResource(result.schedule));
      }
    },
  );

  app.get(
    '/v1/schedules',
    {
      schema: {
        summary: 'List schedules, newest first',
        tags: ['schedules'],
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(100).default(50), cursor: z.string().max(500).optional() }).strict(),
        response: { 200: z.object({ data: z.array(scheduleResource), nextCursor: z.string().nullable() }), ...errors },
      },
    },
    async (request) => {
      const page = await listTenantSchedules(deps, { tenantId: requireTenant(request), ...request.query });
      if ('kind' in page) throw problems.scheduleInvalidCursor();
      return { data: page.data.map(toResource), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/schedules/:id',
    { schema: { summary: 'Get a schedule, its next and recent slots', tags: ['schedules'], params: idParams, response: { 200: scheduleResource, ...errors } } },
    async (request) => {
      const found = await getSchedule(deps, requireTenant(request), request.params.id);
      if (!found) throw problems.scheduleNotFound();
      return toResource(found);
    },
  );

  app.patch(
    '/v1/schedules/:id',
    {
      schema: {
        summary: 'Pause, resume or change the spec of a schedule',
        tags: ['schedules'],
        params: idParams,
        body: z
          .object({ paused: z.boolean().optional(), spec: scheduleSpecSchema.optional() })
          .strict()
          .refine((body) => body.paused !== undefined || body.spec !== undefined, 'change at least one of paused, spec'),
        response: { 200: scheduleResource, ...errors },
      },
    },
    async (request) => {
      let changed;
      try {
        changed = await changeSchedule(deps, requireTenant(request), request.params.id, request.body);
      } catch (error) {
        if (!(error instanceof InvalidScheduleSpecError)) throw error;
        throw problems.invalidRequest('Temporal refused the spec; nothing was changed', [{ path: '/spec/cron', message: error.message }]);
      }
      if (!changed) throw problems.scheduleNotFound();
      return toResource(changed);
    },
  );

  app.delete(
    '/v1/schedules/:id',
    { schema: { summary: 'Delete a schedule (operations it started stay)', tags: ['schedules'], params: idParams, response: { 204: z.null(), ...errors } } },
    async (request, reply) => {
      if (!(await deleteSchedule(deps, requireTenant(request), request.params.id))) throw problems.scheduleNotFound();
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/schedules/:id/backfill',
    {
      schema: {
        summary: 'Run the slots of a past range now; slots that already ran start nothing new',
        tags: ['schedules'],
        params: idParams,
        body: z
          .object({ start: z.iso.datetime({ offset: true }), end: z.iso.datetime({ offset: true }) })
          .strict()
          .refine((range) => Date.parse(range.start) < Date.parse(range.end), { message: 'start must be before end', path: ['end'] })
          .refine((range) => Date.parse(range.end) - Date.parse(range.start) <= MAX_BACKFILL_MS, { message: 'a backfill covers at most 31 days', path: ['end'] }),
        response: { 202: z.object({ scheduleId: z.string(), start: z.string(), end: z.string() }), ...errors },
      },
    },
    async (request, reply) => {
      const range = { start: new Date(request.body.start), end: new Date(request.body.end) };
      if (!(await backfillSchedule(deps, requireTenant(request), request.params.id, range))) throw problems.scheduleNotFound();
      return reply.code(202).send({ scheduleId: request.params.id, start: range.start.toISOString(), end: range.end.toISOString() });
    },
  );
};

const MAX_BACKFILL_MS = 31 * 86_400_000;

function resource(row: ScheduleView | ScheduleRow, ui: { baseUrl: string; namespace: string }) {
  const live = 'live' in row ? row.live : undefined;
  const paused = live?.paused ?? row.paused;
  return {
    id: row.scheduleId,
    operationType: row.operationType,
    input: row.input,
    spec: row.spec,
    state: row.deletedAt ? ('deleted' as const) : paused ? ('paused' as const) : ('active' as const),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    ...(live
      ? {
          nextSlots: live.nextSlots.map((time) => time.toISOString()),
          recentSlots: live.recentSlots.map((slot) => ({
            nominalTime: slot.nominalTime.toISOString(),
            startedAt: slot.startedAt.toISOString(),
            idempotencyKey: slot.idempotencyKey,
            operation: operationPath(row.operationType, scheduleSlotKey(row.scheduleId, slot.nominalTime.getTime())),
          })),
        }
      : {}),
    links: {
      self: `/v1/schedules/${row.scheduleId}`,
      temporalUi: `${ui.baseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(ui.namespace)}/schedules/${encodeURIComponent(temporalScheduleId(row.tenantId, row.scheduleId))}`,
    },
  };
}
