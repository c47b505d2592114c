/**
 * The Fastify facade as a function of its dependencies: no listening, no
 * process wiring (that is server.ts), so tests build it against real
 * PostgreSQL and Temporal and listen on a free port.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import { isDatabaseUnavailable } from '../db/errors';
import { IdempotencyStoreError } from '../idempotency/errors';
import { checkIdempotencyKey, rawHeaderValues } from '../idempotency/key';
import { PostgresProgressReader } from '../operations/progress';
import { PostgresOperationsRepository } from '../operations/repository';
import { createFinishedCache } from '../operations/finished-cache';
import { createOperationUseCases } from '../operations/use-cases';
import type { Logger } from '../observability/logger';
import type { Tracing } from '../observability/tracing';
import { CompletionWaiter } from '../operations/completion-waiter';
import { createOperationStarter, WorkflowStartError } from '../operations/starter';
import { createCancelOperation } from '../operations/cancel';
import { createRunCanceller, WorkflowCancelError } from '../operations/canceller';
import { createReservationResumer } from '../operations/resume';
import { createAuthHook } from './auth';
import { InvalidJsonError, ProblemError } from './errors';
import { createHttpMetrics } from './metrics';
import { problems } from './problems';
import { healthRoutes } from './routes/health';
import { operationRoutes } from './routes/operations';
import { subscriptionRoutes } from './routes/subscriptions';
import { deadLetterRoutes } from './routes/dead-letters';
import { scheduleRoutes } from './routes/schedules';
import { AddressPolicy, type HostResolver } from '../outbox/address-policy';
import { geminiWebhookRoutes } from './routes/gemini-webhooks';
import { secretBoxFromConfig } from '../crypto/secret-box';
import { registerOutboxBacklogGauges } from '../outbox/metrics';
import { parseStrictJson } from './strict-json';
import { codecRoutes } from './routes/codec';
import { payloadCodecFromConfig } from '../temporal/codec-config';

export interface AppDeps {
  /** The whole parsed configuration, so route plugins read their own settings from it. DATABASE_URL must be set (the LISTEN connection). */
  config: Config;
  pool: pg.Pool;
  temporal: Client;
  logger: Logger;
  metricsRegistry: Registry;
  /** Epoch ms; default Date.now. Tests inject a movable clock. */
  clock?: () => number;
  /** Default: the PostgreSQL store on `pool`. */
  store?: PostgresOperationsRepository;
  /** Resolves subscription hosts for the URL check; default the system resolver. Tests inject one to stage DNS rebinding. */
  resolveHost?: HostResolver;
  /** Present when ONCEFLOW_TRACING is on: every request gets a server span continuing the caller's traceparent. */
  tracing?: Pick<Tracing, 'fastify'>;
  /** The payload codec of the Temporal client, served at /codec when ONCEFLOW_CODEC_TOKEN is set. Default: from ONCEFLOW_PAYLOAD_KEYS. */
  payloadCodec?: PayloadCodec;
}

/** Retry-After for 503: PostgreSQL or Temporal are usually back within seconds. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 2;

/**
 * How much of a refused body is read before answering, and for how long: past
 * either, the answer goes out and Node closes the connection (a client that
 * keeps sending then sees a reset, its own doing).
 */
const DRAIN_MAX_BYTES = 32 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 15_000;

export type OnceflowApp = Awaited<ReturnType<typeof buildApp>>;

export async function buildApp(deps: AppDeps) {
  const clock = deps.clock ?? Date.now;
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: deps.config.ONCEFLOW_BODY_LIMIT_BYTES,
    // Fastify's default is no limit: a slow client could hold a socket forever.
    requestTimeout: 30_000 + deps.config.ONCEFLOW_MAX_WAIT_SECONDS * 1000,
    // JSON bodies are checked by parseStrictJson; routes have no use for prototype keys.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: 'x-request-id',
    // Node's HTTP parser refuses control characters in headers before any
    // route runs; answer those with a problem body too, not a bare 400.
    clientErrorHandler: answerMalformedRequest,
    genReqId: () => crypto.randomUUID(),
  }).withTypeProvider<ZodTypeProvider>();
  // First, so that it wraps every route and hook registered after it.
  if (deps.tracing) await app.register(deps.tracing.fastify.plugin());
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Only JSON is accepted; Fastify would otherwise parse text/plain too.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(/^application\/([a-z0-9.+-]+\+)?json\s*(;.*)?$/i, { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseStrictJson(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  // PostgreSQL text cannot hold U+0000, so a `%00` anywhere in the path or
  // query string would reach a query as a value PostgreSQL refuses (a 500, or
  // worse a 503 that tells the client to retry). Node's parser already refuses
  // raw NUL bytes; this refuses the percent-encoded form for every route at once.
  app.addHook('onRequest', async (request) => {
    if (/%00/i.test(request.url)) {
      throw problems.invalidRequest('the URL must not contain U+0000 (%00)');
    }
  });

  const operationsRepository = new PostgresOperationsRepository(deps.pool);
  // An answer given before the body was read (413, 401, 415, 429) would make
  // Node close the connection right after it while the client is still
  // sending: the client's kernel then gets a reset and a client that reads
  // only after sending everything (fetch) sees ECONNRESET instead of the
  // problem. Read and discard the rest first, up to a bound, then answer.
  // Fastify marks such an answer `Connection: close`; once the body is read to
  // its end the connection is clean again and stays open for the next request.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.raw.complete) return payload;
    const drained = await drainBody(request.raw, { maxBytes: Math.max(DRAIN_MAX_BYTES, 4 * deps.config.ONCEFLOW_BODY_LIMIT_BYTES), timeoutMs: DRAIN_TIMEOUT_MS });
    if (drained && String(reply.getHeader('connection')).toLowerCase() === 'close') reply.removeHeader('connection');
    return payload;
  });

  const metrics = createHttpMetrics(deps.metricsRegistry, operationsRepository);
  registerOutboxBacklogGauges(deps.metricsRegistry, deps.pool);
  // Set before any plugin is registered: encapsulated plugins inherit the handlers in force when they register.
  app.setNotFoundHandler((request, reply) => {
    sendProblem(reply, problems.routeNotFound(request.method, request.url.split('?')[0]!));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = withRouteContext(toProblem(error), request);
    if (problem.status >= 500) {
      request.log.error({ err: error }, 'request failed');
      if (error instanceof IdempotencyStoreError) metrics.storeErrors.inc({ operation: error.operation });
      if (error instanceof WorkflowStartError) metrics.workflowStartErrors.inc();
    }
    sendProblem(reply, problem);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Onceflow',
        version: '1',
        description: 'Idempotent AI operations. Every POST needs an Idempotency-Key; repeats replay the first result.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const store = deps.store ?? operationsRepository;
  const waiter = new CompletionWaiter({
    connectionString: deps.config.DATABASE_URL!,
    logger: deps.logger,
    maxPerTenant: deps.config.ONCEFLOW_MAX_WAITING_PER_TENANT,
    maxPerProcess: deps.config.ONCEFLOW_MAX_WAITING_PER_PROCESS,
    metricsRegistry: deps.metricsRegistry,
  });
  app.addHook('onClose', () => waiter.close());
  const startOperation = createOperationStarter({ temporal: deps.temporal, store, taskQueue: deps.config.TEMPORAL_TASK_QUEUE, modelChain: deps.config.GEMINI_MODELS });
  const useCases = createOperationUseCases({
    operations: store,
    startOperation,
    waiter,
    progress: new PostgresProgressReader(deps.pool),
    finished: createFinishedCache({ maxBytes: deps.config.ONCEFLOW_FINISHED_CACHE_MB * 1024 * 1024, ttlMs: 60_000 }),
    observe: {
      duplicateAbsorbed: (record) => metrics.duplicatesAbsorbed.inc({ tenant: record.tenantId, operation_type: record.operationType }),
      reservationTimer: () => metrics.reservationSeconds.startTimer(),
    },
    defaultRetentionHours: deps.config.ONCEFLOW_DEFAULT_RETENTION_HOURS,
    clock,
  });
  const cancelOperation = createCancelOperation({
    operations: store,
    cancelRun: createRunCanceller({ temporal: deps.temporal }),
    resumeReservation: createReservationResumer({ operations: store, startOperation, clock }),
    clock,
  });

  await app.register(healthRoutes, {
    pool: deps.pool,
    temporal: deps.temporal,
    metricsRegistry: deps.metricsRegistry,
    serveMetrics: deps.config.API_METRICS_PORT === undefined,
    metricsToken: deps.config.ONCEFLOW_METRICS_TOKEN,
  });

  // ── Public route plugins (NO Bearer auth; each verifies its caller itself) ──
  // One `await app.register(...)` line per plugin, added by the plugin's owner:
  //   - src/http/routes/gemini-webhooks.ts → geminiWebhookRoutes (POST /v1/webhooks/gemini, Standard Webhooks signature)
  // Everything thrown in these routes still goes through the one problem+json error handler above.
  await app.register(geminiWebhookRoutes, { pool: deps.pool, temporal: deps.temporal, config: deps.config });
  //   - src/http/routes/codec.ts → codecRoutes (/codec/encode, /codec/decode for the Temporal UI; operator token)
  const payloadCodec = deps.payloadCodec ?? payloadCodecFromConfig(deps.config);
  if (payloadCodec && deps.config.ONCEFLOW_CODEC_TOKEN) {
    await app.register(codecRoutes, {
      codec: payloadCodec,
      token: deps.config.ONCEFLOW_CODEC_TOKEN,
      corsOrigin: deps.config.ONCEFLOW_CODEC_CORS_ORIGIN ?? new URL(deps.config.TEMPORAL_UI_URL).origin,
    });
  }

  // Everything under /v1 is per tenant: authenticated first (before the body is
  // read), then rate limited per tenant.
  await app.register(async (v1) => {
    v1.addHook('onRequest', createAuthHook({ pool: deps.pool, clock, failuresPerMinute: deps.config.ONCEFLOW_AUTH_FAILURES_PER_MINUTE }));
    await v1.register(rateLimit, {
      hook: 'preParsing',
      max: deps.config.ONCEFLOW_RATE_LIMIT_PER_MINUTE,
      timeWindow: 60_000,
      keyGenerator: (request) => request.tenantId ?? request.ip,
      errorResponseBuilder: (_request, context) => problems.rateLimited(context.max, Math.max(1, Math.ceil(context.ttl / 1000))),
    });
    await v1.register(operationRoutes, {
      useCases,
      cancelOperation,
      metrics,
      maxWaitSeconds: deps.config.ONCEFLOW_MAX_WAIT_SECONDS,
      allowedModels: deps.config.GEMINI_ALLOWED_MODELS,
      temporalUi: { baseUrl: deps.config.TEMPORAL_UI_URL, namespace: deps.config.TEMPORAL_NAMESPACE },
    });

    // ── Authenticated route plugins (Bearer API key → request.tenantId, rate limited per tenant) ──
    // One `await v1.register(...)` line per plugin, added by the plugin's owner.
    // Inside these plugins `request.tenantId` is always set (see src/http/auth.ts;
    // `requireTenant(request)` reads it typed as string), and every query must be
    // scoped by it: another tenant's resource answers 404, never 403.
    //   - src/http/routes/subscriptions.ts → subscriptionRoutes (/v1/subscriptions)
    //   - src/http/routes/dead-letters.ts → deadLetterRoutes (/v1/dead-letters, /v1/dead-letters/replay)
    //   - src/http/routes/schedules.ts → scheduleRoutes (/v1/schedules, scheduled operations)
    await v1.register(subscriptionRoutes, {
      pool: deps.pool,
      secretBox: secretBoxFromConfig(deps.config),
      addressPolicy: new AddressPolicy({ allowedHosts: deps.config.WEBHOOK_ALLOWED_HOSTS, resolve: deps.resolveHost }),
      maxPerTenant: deps.config.ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT,
    });
    await v1.register(deadLetterRoutes, { pool: deps.pool });
    await v1.register(scheduleRoutes, {
      pool: deps.pool,
      temporal: deps.temporal,
      taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
      allowedModels: deps.config.GEMINI_ALLOWED_MODELS,
      temporalUi: { baseUrl: deps.config.TEMPORAL_UI_URL, namespace: deps.config.TEMPORAL_NAMESPACE },
    });
  });

  return app;
}

/**
 * Reads and discards what is left of a request body. True when it was read to
 * its end; false past `maxBytes`, after `timeoutMs`, or when the connection went.
 */
function drainBody(request: IncomingMessage, limits: { maxBytes: number; timeoutMs: number }): Promise<boolean> {
  return new Promise((resolve) => {
    let seenBytes = 0;
    const finish = (ended: boolean) => {
      clearTimeout(timer);
      request.off('data', onData).off('end', onEnd).off('error', onStop).off('close', onStop);
      resolve(ended);
    };
    const onEnd = () => finish(true);
    const onStop = () => finish(false);
    const onData = (chunk: Buffer) => {
      seenBytes += chunk.length;
      if (seenBytes > limits.maxBytes) finish(false);
    };
    const timer = setTimeout(onStop, limits.timeoutMs);
    request.on('data', onData).once('end', onEnd).once('error', onStop).once('close', onStop);
    request.resume();
  });
}

function answerMalformedRequest(error: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (!socket.writable) return;
  const raw = Buffer.isBuffer(error.rawPacket) ? error.rawPacket.toString('latin1') : '';
  const keyValue = /^idempotency-key:(.*)$/im.exec(raw)?.[1] ?? '';
  const keyHeader = [...keyValue].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f);
  const problem = keyHeader
    ? problems.keyInvalid(undefined, 'an Idempotency-Key is printable ASCII only (a UUID is recommended)')
    : problems.invalidRequest(`the HTTP request could not be parsed (${error.code ?? 'parse error'})`);
  const body = JSON.stringify(problem.body());
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Adds `operationType` and `idempotencyKey` to a problem about a request to an
 * operation route when the problem itself does not name them: a schema 400, a
 * 413 or a 415 is answered before the handler runs, and the contract asks
 * every problem to carry both where known. The key only when it is a valid one.
 */
function withRouteContext(problem: ProblemError, request: FastifyRequest): ProblemError {
  const operationType = (request.routeOptions.config as { operationType?: string } | undefined)?.operationType;
  if (!operationType) return problem;
  const key = checkIdempotencyKey(rawHeaderValues(request.raw.rawHeaders, 'idempotency-key'));
  const context: Record<string, unknown> = { operationType, ...(key.ok ? { idempotencyKey: key.key } : {}) };
  return problem.withExtensions(Object.fromEntries(Object.entries(context).filter(([name]) => !(name in problem.extensions))));
}

function sendProblem(reply: Pick<FastifyReply, 'code' | 'header' | 'type' | 'send'>, problem: ProblemError): void {
  for (const [name, value] of Object.entries(problem.headers)) reply.header(name, value);
  reply.code(problem.status);
  reply.type('application/problem+json');
  reply.send(JSON.stringify(problem.body()));
}

/** The one mapping from anything thrown to a problem; 5xx details never leave the process. */
function toProblem(error: FastifyError): ProblemError {
  if (error instanceof ProblemError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    return problems.invalidRequest(
      'the request does not match the route’s schema (the operation type’s, for a POST); nothing was reserved',
      error.validation.map((issue) => ({
        path: issue.instancePath || '/',
        message: issue.message,
        code: (issue.params as { issue?: { code?: string } } | undefined)?.issue?.code,
      })),
    );
  }
  if (error instanceof InvalidJsonError || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || error.code === 'FST_ERR_PROTO_POISONING' || error.code === 'FST_ERR_CTP_EMPTY_TYPE' || error.code === 'FST_ERR_CTP_INVALID_TYPE') {
    return problems.invalidRequest(error.message);
  }
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return problems.payloadTooLarge(error.message);
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return problems.unsupportedMediaType();
  }
  if (error instanceof IdempotencyStoreError || error instanceof WorkflowStartError || error instanceof WorkflowCancelError || isDatabaseUnavailable(error)) {
    return problems.unavailable(error instanceof WorkflowStartError || error instanceof WorkflowCancelError ? 'Temporal' : 'PostgreSQL', UNAVAILABLE_RETRY_AFTER_SECONDS, error);
  }
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return problems.badRequest(error.statusCode, error.message);
  }
  return problems.internal(error);
}
