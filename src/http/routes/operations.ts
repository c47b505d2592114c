import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod, ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deriveIdempotencyKey, DERIVED_KEY_PREFIX, isDerivedKey } from '../../idempotency/derived-key';
import { checkIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH, rawHeaderValues } from '../../idempotency/key';
import { retryAfterSeconds } from '../../operations/progress';
import { inputSchemaAllowing, operationTypes, type OperationTypeDefinition } from '../../operations/registry';
import type { ListPosition, OperationState } from '../../operations/repository';
import { operationPath, operationProgressSchema, operationResourceSchemaFor, serializeOperationResource, toOperationResource } from '../../operations/resource';
import { publicStatuses } from '../../operations/status';
import type { CancelOperation } from '../../operations/cancel';
import type { OperationUseCases, StartOrAttachResult } from '../../operations/use-cases';
import { PROBLEM_BASE } from '../errors';
import { RequestOutcome, type HttpMetrics } from '../metrics';
import { parsePreferWait, whileConnected } from '../prefer';
import { failureProblem, problems } from '../problems';
import { problemResponses, problemSchema } from '../schemas';

export interface OperationRoutesOptions {
  useCases: OperationUseCases;
  /** POST /v1/operations/{type}/{key}/cancel (src/operations/cancel.ts). */
  cancelOperation: CancelOperation;
  metrics: HttpMetrics;
  /** Cap for `Prefer: wait=N`, seconds. */
  maxWaitSeconds: number;
  /** GEMINI_ALLOWED_MODELS: the models a request may name. */
  allowedModels: readonly string[];
  temporalUi: { baseUrl: string; namespace: string };
}

/** GET /v1/operations: page size when `limit` is absent, and its cap. */
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

// The key is checked by the handler, not by this schema, so that a missing or
// malformed key is answered with the contract's own problem types
// (idempotency-key-missing / -invalid) rather than a generic schema 400. The
// document still states the rule: `.meta` shapes the OpenAPI output only.
function keyHeadersFor(definition: OperationTypeDefinition) {
  const derived = definition.keyFields?.length
    ? ` Optional for this type: without it, the key is derived from ${definition.keyFields.map((f) => `\`${f}\``).join(', ')} (SHA-256 of their RFC 8785 JSON, prefixed \`${DERIVED_KEY_PREFIX}\`) and returned in the Idempotency-Key response header.`
    : '';
  return z
    .object({
      'idempotency-key': z
        .string()
        .optional()
        .meta({ pattern: `^[\\x20-\\x7E]{1,${MAX_IDEMPOTENCY_KEY_LENGTH}}$`, minLength: 1, maxLength: MAX_IDEMPOTENCY_KEY_LENGTH })
        .describe(`1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters; a UUID is recommended. Reused on every retry of the same request.${derived}`),
      prefer: z.string().optional().describe('RFC 7240, e.g. `wait=10`: hold the response up to N seconds for the final result.'),
    })
    .meta(definition.keyFields?.length ? {} : { required: ['idempotency-key'] });
}

const expiresAt = z.string().optional().describe('RFC 3339; the same instant as the Idempotency-Expires header (epoch ms)');

/** A problem response whose body documents the members a status adds (contract v1.1). */
function problemWith(description: string, members: z.ZodRawShape) {
  return { description, content: { 'application/problem+json': { schema: problemSchema.extend(members) } } };
}

const errorResponses = {
  ...problemResponses(400, 401, 402, 404, 410, 413, 415, 429, 502, 503),
  409: problemWith('operation-in-progress: the first request with this key is still running; Retry-After (1 to 60 s) follows `progress`', {
    expiresAt,
    progress: operationProgressSchema.optional(),
  }),
  422: problemWith('idempotency-key-reused (with `differences` and `fingerprintVersion`), or the replay of a rejected prompt (with `operation`)', {
    expiresAt,
    differences: z.array(z.string()).optional().describe('RFC 6901 pointers to the essential fields that differ from the first request; values are never echoed'),
    fingerprintVersion: z.number().int().optional(),
    operation: z.unknown().optional(),
  }),
};

const listQuery = z
  .object({
    type: z.enum(Object.keys(operationTypes) as [string, ...string[]]).optional(),
    status: z.enum(publicStatuses).optional().describe('`running` includes operations whose start is not yet confirmed'),
    createdAfter: z.iso.datetime({ offset: true }).optional().describe('RFC 3339, exclusive'),
    createdBefore: z.iso.datetime({ offset: true }).optional().describe('RFC 3339, exclusive'),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
    cursor: z.string().max(200).optional().describe('`nextCursor` of the previous page'),
  })
  .strict();

const listItemSchema = operationResourceSchemaFor('any', z.unknown()).extend({ operationType: z.string() });
const listResponse = z.object({ data: z.array(listItemSchema), nextCursor: z.string().nullable() });

export const operationRoutes: FastifyPluginAsyncZod<OperationRoutesOptions> = async (app, options) => {
  const ui = options.temporalUi;
  const { useCases } = options;
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
          headers: keyHeadersFor(definition),
          body: inputSchemaAllowing(definition, options.allowedModels),
          response: { 200: operationResourceSchema, 202: operationResourceSchema, ...errorResponses },
        },
      },
      (request, reply) => startOrAttach(definition, request, reply),
    );
  }

  app.get(
    '/v1/operations',
    {
      schema: {
        summary: "List the caller's operations, newest first (cursor-paged)",
        tags: ['operations'],
        querystring: listQuery,
        response: { 200: listResponse, ...problemResponses(400, 401, 429, 503) },
      },
    },
    async (request) => {
      const query = request.query;
      const createdAfter = query.createdAfter ? new Date(query.createdAfter) : undefined;
      const createdBefore = query.createdBefore ? new Date(query.createdBefore) : undefined;
      const page = await useCases.list({
        tenantId: request.tenantId!,
        operationType: query.type,
        status: query.status,
        createdAfter,
        createdBefore,
        after: query.cursor === undefined ? undefined : decodeCursor(query.cursor),
        limit: query.limit,
      });
      return { data: page.rows.map((row) => toOperationResource(row, ui)), nextCursor: page.next ? encodeCursor(page.next) : null };
    },
  );

  app.post(
    '/v1/operations/:type',
    { schema: { hide: true, params: z.object({ type: z.string() }) } },
    async (request) => {
      throw problems.unknownType(request.params.type, Object.keys(operationTypes));
    },
  );

  app.get('/v1/operations/:type/:key', { schema: { hide: true, params: z.object({ type: z.string(), key: z.string() }) } }, async (request) => {
    throw problems.unknownType(request.params.type, Object.keys(operationTypes));
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
      async (request, reply) => {
        const key = request.params.key;
        const found = await useCases.read({ tenantId: request.tenantId!, operationType: definition.name, idempotencyKey: key });
        // Expired keys and other tenants' keys look exactly like unknown ones.
        if (!found) throw problems.notFound(definition.name, key);
        reply.header('Idempotency-Expires', String(found.record.expiresAt.getTime()));
        if (found.progress) reply.header('Retry-After', String(retryAfterSeconds(found.progress)));
        return { ...toOperationResource(found.record, ui), ...(found.progress ? { progress: found.progress } : {}) };
      },
    );
  }

  // Cancel takes no body. Whatever a client sends with it (often an empty body
  // labelled application/json, which the JSON parser would refuse with a 400)
  // is read up to the body limit and ignored: a bodiless request never fails on its body.
  await app.register(async (scope) => {
    const bodiless = scope.withTypeProvider<ZodTypeProvider>();
    bodiless.removeAllContentTypeParsers();
    bodiless.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined));

    bodiless.post('/v1/operations/:type/:key/cancel', { schema: { hide: true, params: z.object({ type: z.string(), key: z.string() }) } }, async (request) => {
      throw problems.unknownType(request.params.type, Object.keys(operationTypes));
    });

    for (const definition of Object.values(operationTypes) as OperationTypeDefinition[]) {
      const operationResourceSchema = operationResourceSchemaFor(definition.name, definition.resultSchema);
      bodiless.post(
        `/v1/operations/${definition.name}/:key/cancel`,
        {
          schema: {
            summary: `Cancel a running ${definition.name} operation`,
            description:
              'Asks the run to stop (Temporal workflow cancellation): it stops at its next step, abandons a Gemini call in flight' +
              (definition.name === 'generate-report' ? ' and cancels the submitted background interaction' : '') +
              ', and ends `canceled` with one `operation.canceled` event and a bill for what was already paid. ' +
              '`202` while the cancellation is under way, `200` when the operation is already final (nothing is done twice). ' +
              'Repeats of the key then replay `410 operation-canceled` (Idempotent-Replayed: true) until it expires. No request body.',
            tags: ['operations'],
            params: z.object({ key: z.string() }),
            response: {
              200: operationResourceSchema.describe('already final (succeeded, failed or canceled): the operation as it is; nothing was done'),
              202: operationResourceSchema.describe('cancellation requested: the operation, still `running`; GET it (or wait for the `operation.canceled` event) to see it end'),
              ...problemResponses(401, 404, 429, 503),
            },
          },
        },
        async (request, reply) => {
          const key = request.params.key;
          const result = await options.cancelOperation({ tenantId: request.tenantId!, operationType: definition.name, idempotencyKey: key });
          // Expired keys and other tenants' keys look exactly like unknown ones.
          if (result.kind === 'notFound') throw problems.notFound(definition.name, key);
          const { record } = result;
          request.log.info(
            { correlationId: record.operationId, tenant: record.tenantId, operationType: record.operationType, idempotencyKey: record.idempotencyKey, workflowId: record.workflowId, runId: record.runId, status: record.status },
            result.kind === 'requested' ? 'operation cancel requested' : 'operation cancel: already final, nothing done',
          );
          reply
            .code(result.kind === 'requested' ? 202 : 200)
            .header('Idempotency-Expires', String(record.expiresAt.getTime()))
            .header('Location', operationPath(record.operationType, record.idempotencyKey));
          return toOperationResource(record, ui);
        },
      );
    }
  });

  async function startOrAttach(definition: OperationTypeDefinition, request: FastifyRequest, reply: FastifyReply) {
    const tenantId = request.tenantId!;
    const { idempotencyKey, derived } = resolveKey(definition, request);
    if (derived) reply.header('Idempotency-Key', idempotencyKey);
    const keyHeaders: Record<string, string> = derived ? { 'Idempotency-Key': idempotencyKey } : {};
    const waitSeconds = parsePreferWait(request.headers.prefer, options.maxWaitSeconds);
    const command = { definition, tenantId, operationType: definition.name, idempotencyKey, input: request.body, waitSeconds };
    // A client that hangs up mid-wait frees its waiting slot at once. Only a
    // wait can be cut short, so only a wait pays for the AbortController and
    // its socket listener (about 4 % of a replay's CPU in a profile).
    const result =
      waitSeconds > 0
        ? await whileConnected(request.raw.socket, (signal) => useCases.startOrAttach({ ...command, signal }))
        : await useCases.startOrAttach(command);
    note(request, result);
    return answer(result, reply, waitSeconds, keyHeaders);
  }

  /** The key of a POST: the caller's header, or one derived from the type's key fields when the header is absent. */
  function resolveKey(definition: OperationTypeDefinition, request: FastifyRequest): { idempotencyKey: string; derived: boolean } {
    const keyCheck = checkIdempotencyKey(rawHeaderValues(request.raw.rawHeaders, 'idempotency-key'));
    const keyFields = definition.keyFields ?? [];
    if (!keyCheck.ok) {
      if (keyCheck.reason === 'missing' && keyFields.length > 0) {
        return { idempotencyKey: deriveIdempotencyKey(request.body, keyFields), derived: true };
      }
      outcomes.set(request, keyCheck.reason === 'missing' ? RequestOutcome.KeyMissing : RequestOutcome.KeyInvalid);
      throw keyCheck.reason === 'missing' ? problems.keyMissing(definition.name) : problems.keyInvalid(definition.name, keyCheck.detail);
    }
    // A caller's key may look like a derived one only when it is the one its
    // body derives (a retry echoing the returned header): never another's.
    if (keyFields.length > 0 && isDerivedKey(keyCheck.key) && keyCheck.key !== deriveIdempotencyKey(request.body, keyFields)) {
      outcomes.set(request, RequestOutcome.KeyInvalid);
      throw problems.keyInvalid(definition.name, `keys starting with "${DERIVED_KEY_PREFIX}" are reserved for keys derived from ${keyFields.join(', ')}; send your own key without that prefix, or none`);
    }
    return { idempotencyKey: keyCheck.key, derived: false };
  }

  function answer(result: StartOrAttachResult, reply: FastifyReply, waitSeconds: number, keyHeaders: Record<string, string>) {
    const { record } = result;
    const expiry = { 'Idempotency-Expires': String(record.expiresAt.getTime()), ...keyHeaders };
    switch (result.kind) {
      case 'started': {
        reply.header('Idempotency-Expires', expiry['Idempotency-Expires']);
        if (waitSeconds > 0) reply.header('Preference-Applied', `wait=${waitSeconds}`);
        if (result.finished) return answerFinished(result.finished, reply, { replayed: false });
        return reply
          .code(202)
          .header('Location', operationPath(record.operationType, record.idempotencyKey))
          .send(toOperationResource(record, ui) as never);
      }
      case 'replayed':
        reply.header('Idempotency-Expires', expiry['Idempotency-Expires']);
        if (result.waited) reply.header('Preference-Applied', `wait=${waitSeconds}`);
        return answerFinished(record, reply, { replayed: true });
      case 'inProgress':
        throw problems.inProgress(
          { idempotencyKey: record.idempotencyKey, operationType: record.operationType, expiresAt: record.expiresAt.toISOString(), progress: result.progress },
          { ...expiry, 'Retry-After': String(retryAfterSeconds(result.progress)), Location: operationPath(record.operationType, record.idempotencyKey) },
        );
      case 'conflict':
        throw problems.keyReused(
          {
            idempotencyKey: record.idempotencyKey,
            operationType: record.operationType,
            expiresAt: record.expiresAt.toISOString(),
            differences: result.differences,
            fingerprintVersion: result.fingerprintVersion,
          },
          expiry,
        );
    }
  }

  /**
   * Records the outcome (counted in onResponse) and logs it with the correlation id that every process
   * uses for this operation (its operation id), next to the request id, key,
   * workflow and run: one grep follows a request from HTTP to Gemini to the outbox.
   */
  function note(request: FastifyRequest, result: StartOrAttachResult): void {
    const outcome = {
      started: RequestOutcome.New,
      replayed: RequestOutcome.Replayed,
      inProgress: RequestOutcome.InProgress,
      conflict: RequestOutcome.FingerprintConflict,
    }[result.kind];
    const record = result.record;
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

  function answerFinished(record: OperationState, reply: FastifyReply, { replayed }: { replayed: boolean }) {
    if (replayed) {
      reply.header('Idempotent-Replayed', 'true').header('Idempotency-First-Seen', String(record.firstSeenMs));
    }
    const resource = toOperationResource(record, ui);
    if (record.status === 'succeeded') return reply.code(200).type('application/json; charset=utf-8').send(serializeOperationResource(resource));
    const problem = failureProblem(record.error, record.errorStatus);
    return reply
      .code(problem.status)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: `${PROBLEM_BASE}${problem.type}`,
          title: problem.title,
          status: problem.status,
          detail: record.error?.detail ?? 'the operation failed',
          idempotencyKey: record.idempotencyKey,
          operationType: record.operationType,
          expiresAt: resource.expiresAt,
          operation: resource,
        }),
      );
  }
};

/** The outcome of an answer the handler never reached, by its status; undefined for statuses not counted (401 has no tenant). */
function outcomeOfStatus(status: number): RequestOutcome | undefined {
  if (status === 400 || status === 413 || status === 415) return RequestOutcome.InvalidRequest;
  if (status === 429) return RequestOutcome.RateLimited;
  if (status === 503) return RequestOutcome.Unavailable;
  if (status >= 500) return RequestOutcome.Error;
  return undefined;
}

/** Opaque to clients: base64url of the last row's position. Not signed: a forged cursor only pages the caller's own rows. */
function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.createdAtMicros}.${position.operationId}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): ListPosition {
  const match = /^(\d{1,19})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw problems.invalidQuery('`cursor` is not a cursor this API returned', [{ path: '/cursor', message: 'unknown cursor' }]);
  return { createdAtMicros: match[1]!, operationId: match[2]! };
}
