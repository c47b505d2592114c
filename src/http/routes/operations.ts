import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fingerprint } from '../../idempotency/fingerprint';
import { checkIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, rawHeaderValues } from '../../idempotency/key';
import type { IdempotencyStore, OperationState } from '../../idempotency/store';
import { operationWorkflowId } from '../../idempotency/workflow-id';
import type { CompletionWaiter } from '../../operations/completion-waiter';
import { operationTypes, type OperationTypeDefinition } from '../../operations/registry';
import { operationPath, operationResourceSchemaFor, serializeOperationResource, toOperationResource } from '../../operations/resource';
import type { StartOperation } from '../../operations/starter';
import { PROBLEM_BASE, ProblemError } from '../errors';
import { RequestOutcome, type HttpMetrics } from '../metrics';
import { parsePreferWait } from '../prefer';
import { problemResponses } from '../schemas';

export interface OperationRoutesOptions {
  store: IdempotencyStore;
  startOperation: StartOperation;
  waiter: CompletionWaiter;
  metrics: HttpMetrics;
  /** Cap for `Prefer: wait=N`, seconds. */
  maxWaitSeconds: number;
  /** Retention of a type that declares none (ONCEFLOW_DEFAULT_RETENTION_HOURS, default 24). */
  defaultRetentionHours: number;
  temporalUi: { baseUrl: string; namespace: string };
  /** Epoch ms; injected so tests can move time. */
  clock: () => number;
}

/**
 * A `reserved` row older than this whose start was never confirmed is started
 * by the next request that sees it (the facade died or Temporal was down
 * between reserving and starting). Younger rows are probably being started by
 * their first request right now; starting again would be harmless, only wasted.
 */
const STALE_RESERVATION_MS = 2_000;
/** Retry-After for 409 in-progress: operations typically take seconds. */
const IN_PROGRESS_RETRY_AFTER_SECONDS = 1;

// The key is checked by the handler, not by this schema, so that a missing or
// malformed key is answered with the contract's own problem types
// (idempotency-key-missing / -invalid) rather than a generic schema 400. The
// document still states the rule: `.meta` shapes the OpenAPI output only.
const keyHeaders = z
  .object({
    'idempotency-key': z
      .string()
      .optional()
      .meta({ pattern: `^[\\x20-\\x7E]{1,${MAX_IDEMPOTENCY_KEY_LENGTH}}$`, minLength: 1, maxLength: MAX_IDEMPOTENCY_KEY_LENGTH })
      .describe(`1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters; a UUID is recommended. Reused on every retry of the same request.`),
    prefer: z.string().optional().describe('RFC 7240, e.g. `wait=10`: hold the response up to N seconds for the final result.'),
  })
  .meta({ required: ['idempotency-key'] });

const errorResponses = problemResponses(400, 401, 404, 409, 413, 415, 422, 429, 502, 503);

export const operationRoutes: FastifyPluginAsyncZod<OperationRoutesOptions> = async (app, options) => {
  const ui = options.temporalUi;
  /** The outcome a handler decided, counted once the answer is sent (see onResponse). */
  const outcomes = new WeakMap<FastifyRequest, RequestOutcome>();

  // Every POST answer is counted here, once: the handler's own verdict when it
  // reached one, otherwise what the status says (schema 400, 413, 415 and 429
  // are answered before the handler runs; 503 when a dependency failed).
  app.addHook('onResponse', async (request, reply) => {
    const operationType = (request.routeOptions.config as { operationType?: string }).operationType;
    if (request.method !== 'POST' || !operationType || !request.tenantId) return;
    const outcome = outcomes.get(request) ?? outcomeOfStatus(reply.statusCode);
    if (outcome) options.metrics.requests.inc({ tenant: request.tenantId, operation_type: operationType, outcome, entry_point: 'http' });
  });

  for (const definition of Object.values(operationTypes) as OperationTypeDefinition[]) {
    const operationResourceSchema = operationResourceSchemaFor(definition.name, definition.resultSchema);
    app.post(
      `/v1/operations/${definition.name}`,
      {
        // Read by the error handler in app.ts, so a problem answered before the
        // handler runs (schema, 413, 415, 429) still names its operation type and key.
        config: { operationType: definition.name },
        schema: {
          summary: `Start a ${definition.name} operation (idempotent)`,
          tags: ['operations'],
          headers: keyHeaders,
          body: definition.inputSchema,
          response: { 200: operationResourceSchema, 202: operationResourceSchema, ...errorResponses },
        },
      },
      (request, reply) => startOrReplay(definition, request, reply),
    );
  }

  app.post(
    '/v1/operations/:type',
    { schema: { hide: true, params: z.object({ type: z.string() }) } },
    async (request) => {
      throw unknownType(request.params.type);
    },
  );

  app.get('/v1/operations/:type/:key', { schema: { hide: true, params: z.object({ type: z.string(), key: z.string() }) } }, async (request) => {
    throw unknownType(request.params.type);
  });

  for (const definition of Object.values(operationTypes) as OperationTypeDefinition[]) {
    app.get(
      `/v1/operations/${definition.name}/:key`,
      {
        schema: {
          summary: `Read a ${definition.name} operation by its idempotency key`,
          tags: ['operations'],
          params: z.object({ key: z.string() }),
          response: { 200: operationResourceSchemaFor(definition.name, definition.resultSchema), ...problemResponses(400, 401, 404, 429, 503) },
        },
      },
      (request) => readOperation(definition.name, request.tenantId!, request.params.key),
    );
  }

  async function readOperation(type: string, tenantId: string, key: string) {
    const record = await options.store.find({ tenantId, operationType: type, idempotencyKey: key });
    // Expired keys and other tenants' keys look exactly like unknown ones.
    if (!record || record.expiresAt.getTime() <= options.clock()) {
      throw new ProblemError({
        status: 404,
        type: 'operation-not-found',
        title: 'Operation not found',
        detail: `no live ${type} operation has this idempotency key`,
        extensions: { idempotencyKey: key, operationType: type },
      });
    }
    return toOperationResource(record, ui);
  }

  async function startOrReplay(definition: OperationTypeDefinition, request: FastifyRequest, reply: FastifyReply) {
    const tenantId = request.tenantId!;
    const keyCheck = checkIdempotencyKey(rawHeaderValues(request.raw.rawHeaders, 'idempotency-key'));
    if (!keyCheck.ok) {
      outcomes.set(request, keyCheck.reason === 'missing' ? RequestOutcome.KeyMissing : RequestOutcome.KeyInvalid);
      throw keyCheck.reason === 'missing'
        ? new ProblemError({ status: 400, type: 'idempotency-key-missing', title: 'Idempotency-Key missing', detail: 'POST /v1/operations requires an Idempotency-Key header', extensions: { operationType: definition.name } })
        : new ProblemError({ status: 400, type: 'idempotency-key-invalid', title: 'Idempotency-Key invalid', detail: keyCheck.detail, extensions: { operationType: definition.name } });
    }
    const idempotencyKey = keyCheck.key;
    const payloadFingerprint = fingerprint(request.body, definition.nonEssentialFields);
    const waitSeconds = parsePreferWait(request.headers.prefer, options.maxWaitSeconds);
    const nowMs = options.clock();
    const scope = { tenantId, operationType: definition.name, idempotencyKey };

    // Fast path: a repeat of a live operation is answered from one indexed read.
    const existing = await options.store.find(scope);
    if (existing && isLive(existing, nowMs)) return answerRepeat(request, existing, payloadFingerprint, waitSeconds, reply);

    const stopTimer = options.metrics.reservationSeconds.startTimer();
    const { record, reserved } = await options.store.reserve({
      ...scope,
      operationId: randomUUID(),
      fingerprint: payloadFingerprint,
      workflowId: operationWorkflowId(tenantId, definition.name, idempotencyKey),
      input: request.body,
      nowMs,
      expiresAtMs: nowMs + (definition.retentionHours ?? options.defaultRetentionHours) * 3_600_000,
    });
    stopTimer();
    if (!reserved) return answerRepeat(request, record, payloadFingerprint, waitSeconds, reply);

    // If this process dies here, or Temporal refuses the start (503), the row
    // stays `reserved`: the next request with the key or the reconciler
    // schedule starts the workflow.
    const runId = await options.startOperation(record);
    const started = { ...record, runId, status: 'running' as const };
    note(request, started, RequestOutcome.New);
    if (waitSeconds > 0) {
      const finished = await waitForFinish(started, waitSeconds);
      reply.header('Preference-Applied', `wait=${waitSeconds}`);
      if (finished) return answerFinished(finished, reply, { replayed: false });
    }
    return reply
      .code(202)
      .header('Location', operationPath(definition.name, idempotencyKey))
      .type('application/json; charset=utf-8')
      .send(serializeOperationResource(toOperationResource(started, ui)));
  }

  /**
   * Records the outcome (counted in onResponse) and logs it with the correlation id that every process
   * uses for this operation (its operation id), next to the request id, key,
   * workflow and run: one grep follows a request from HTTP to Gemini to the outbox.
   */
  function note(request: FastifyRequest, record: OperationState, outcome: RequestOutcome): void {
    outcomes.set(request, outcome);
    request.log.info(
      {
        correlationId: record.operationId,
        tenant: record.tenantId,
        operationType: record.operationType,
        idempotencyKey: record.idempotencyKey,
        workflowId: record.workflowId,
        runId: record.runId,
        outcome,
      },
      `operation request: ${outcome}`,
    );
  }

  async function answerRepeat(request: FastifyRequest, record: OperationState, payloadFingerprint: string, waitSeconds: number, reply: FastifyReply) {
    const labels = { tenant: record.tenantId, operation_type: record.operationType };
    if (record.fingerprint !== payloadFingerprint) {
      note(request, record, RequestOutcome.FingerprintConflict);
      throw new ProblemError({
        status: 422,
        type: 'idempotency-key-reused',
        title: 'Idempotency-Key reused with a different payload',
        detail: 'this key was first used with a different request body; use a new key for a new request',
        extensions: { idempotencyKey: record.idempotencyKey, operationType: record.operationType },
      });
    }
    if (record.status === 'reserved' && options.clock() - record.updatedAt.getTime() > STALE_RESERVATION_MS) {
      // Self-healing: the first request never confirmed its start. This repeat
      // does start work, so it is not counted as a duplicate absorbed. The
      // repeat path reads no input; starting needs it (a rare second read).
      const full = await options.store.findById(record.operationId);
      if (full?.status === 'reserved') await options.startOperation(full);
    } else {
      options.metrics.duplicatesAbsorbed.inc(labels);
    }
    if (record.status === 'succeeded' || record.status === 'failed') {
      note(request, record, RequestOutcome.Replayed);
      return answerFinished(record, reply, { replayed: true });
    }
    if (waitSeconds > 0) {
      const finished = await waitForFinish(record, waitSeconds);
      if (finished) {
        note(request, finished, RequestOutcome.Replayed);
        reply.header('Preference-Applied', `wait=${waitSeconds}`);
        return answerFinished(finished, reply, { replayed: true });
      }
    }
    note(request, record, RequestOutcome.InProgress);
    throw new ProblemError({
      status: 409,
      type: 'operation-in-progress',
      title: 'Operation in progress',
      detail: 'the first request with this key is still running; retry later or send Prefer: wait=N',
      extensions: { idempotencyKey: record.idempotencyKey, operationType: record.operationType },
      headers: {
        'Retry-After': String(IN_PROGRESS_RETRY_AFTER_SECONDS),
        Location: operationPath(record.operationType, record.idempotencyKey),
      },
    });
  }

  function answerFinished(record: OperationState, reply: FastifyReply, { replayed }: { replayed: boolean }) {
    if (replayed) {
      reply.header('Idempotent-Replayed', 'true').header('Idempotency-First-Seen', String(record.firstSeenMs));
    }
    const resource = toOperationResource(record, ui);
    if (record.status === 'succeeded') return reply.code(200).type('application/json; charset=utf-8').send(serializeOperationResource(resource));
    const error = record.error;
    const status = record.errorStatus ?? error?.status ?? 502;
    return reply
      .code(status)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: `${PROBLEM_BASE}${error?.type ?? 'operation-failed'}`,
          title: error?.title ?? 'Operation failed',
          status,
          detail: error?.detail ?? 'the operation failed',
          idempotencyKey: record.idempotencyKey,
          operationType: record.operationType,
          operation: resource,
        }),
      );
  }

  function waitForFinish(record: OperationState, waitSeconds: number): Promise<OperationState | undefined> {
    return options.waiter.waitFor(record.operationId, waitSeconds * 1000, async () => {
      const current = await options.store.findById(record.operationId);
      return current && (current.status === 'succeeded' || current.status === 'failed') ? current : undefined;
    });
  }
};

/** A row that still binds its key: not expired, and not a failure that released it. */
function isLive(record: OperationState, nowMs: number): boolean {
  return record.expiresAt.getTime() > nowMs && !(record.status === 'failed' && record.released);
}

/** The outcome of an answer the handler never reached, by its status; undefined for statuses not counted (401 has no tenant). */
function outcomeOfStatus(status: number): RequestOutcome | undefined {
  if (status === 400 || status === 413 || status === 415) return RequestOutcome.InvalidRequest;
  if (status === 429) return RequestOutcome.RateLimited;
  if (status === 503) return RequestOutcome.Unavailable;
  if (status >= 500) return RequestOutcome.Error;
  return undefined;
}

function unknownType(type: string): ProblemError {
  return new ProblemError({
    status: 404,
    type: 'unknown-operation-type',
    title: 'Unknown operation type',
    detail: `"${type}" is not an operation type; known types: ${Object.keys(operationTypes).join(', ')}`,
    extensions: { operationType: type },
  });
}
