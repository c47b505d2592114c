/**
 * What every problem slug means on the wire: its HTTP status and title,
 * written once. Workflows and activities say what happened (a slug in the
 * operation's `error.type`, with `detail`, `retryable`, `attempts`); only this
 * table turns that into a status. ProblemErrors are built through the
 * constructors below, never inline in routes.
 */
import type { OperationFailure } from '../../workflows/failure-types';
import type { OperationError } from '../../workflows/operation-outcome';
import { ProblemError } from './errors';

interface ProblemKind {
  status: number;
  title: string;
}

/** How an operation can end in failure: the slugs workflows write into `error.type`. */
export const failureProblems = {
  'prompt-rejected': { status: 422, title: 'Prompt rejected by Gemini' },
  'prompt-blocked': { status: 422, title: 'Prompt blocked by Gemini safety filters' },
  'provider-failure': { status: 502, title: 'Gemini failed' },
  'budget-exceeded': { status: 402, title: 'Budget exceeded' },
  /** Gemini refused the deployment's own API key: the service is unavailable, not the request wrong; the key was released. */
  'provider-unavailable': { status: 503, title: 'Gemini is unavailable to this service' },
  /**
   * 410 Gone: the operation was stopped on request and will never have a
   * result under this key until it expires. Not 409, which tells clients to
   * retry later (operation-in-progress), nor a 5xx: nothing failed.
   */
  'operation-canceled': { status: 410, title: 'Operation canceled' },
  /** The run ended (terminated, timed out, lost) without recording an outcome; the key is released. */
  'operation-abandoned': { status: 502, title: 'Operation did not finish' },
} as const satisfies Record<OperationFailure, ProblemKind>;
export type FailureSlug = keyof typeof failureProblems;

/** A failure slug no entry knows (a newer worker's, or a bug): answered as a provider-side failure. */
const UNKNOWN_FAILURE: ProblemKind = { status: 502, title: 'Operation failed' };

/** The problems the facade answers a request with. */
export const requestProblems = {
  'bad-request': { status: 400, title: 'Bad request' },
  'unauthorized': { status: 401, title: 'Unauthorized' },
  'not-found': { status: 404, title: 'Not found' },
  'payload-too-large': { status: 413, title: 'Payload too large' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type' },
  'rate-limited': { status: 429, title: 'Too many requests' },
  'internal-error': { status: 500, title: 'Internal error' },
  'service-unavailable': { status: 503, title: 'Service unavailable' },
  'idempotency-key-missing': { status: 400, title: 'Idempotency-Key missing' },
  'idempotency-key-invalid': { status: 400, title: 'Idempotency-Key invalid' },
  'invalid-request': { status: 400, title: 'Invalid request' },
  'operation-not-found': { status: 404, title: 'Operation not found' },
  'unknown-operation-type': { status: 404, title: 'Unknown operation type' },
  'operation-in-progress': { status: 409, title: 'Operation in progress' },
  'idempotency-key-reused': { status: 422, title: 'Idempotency-Key reused with a different payload' },
  'invalid-signature': { status: 401, title: 'Webhook signature invalid' },
  'subscription-not-found': { status: 404, title: 'Subscription not found' },
  'subscription-url-not-allowed': { status: 400, title: 'Subscription URL not allowed' },
  'subscription-limit-reached': { status: 409, title: 'Subscription limit reached' },
  'schedule-not-found': { status: 404, title: 'Schedule not found' },
  'payload-undecodable': { status: 400, title: 'Payload cannot be decoded' },
} as const satisfies Record<string, ProblemKind>;
export type RequestProblemSlug = keyof typeof requestProblems;

/**
 * Status and title of a finished operation's failure. Rows written before the
 * workflows stopped deciding HTTP carry their own `status` and `title`: a slug
 * this table knows wins, otherwise those stored values are used.
 */
export function failureProblem(error: Partial<OperationError> | null, storedStatus: number | null): ProblemKind & { type: string } {
  const slug = error?.type ?? 'operation-failed';
  const known = Object.hasOwn(failureProblems, slug) ? failureProblems[slug as FailureSlug] : undefined;
  const legacy = error as { status?: unknown; title?: unknown } | null;
  return {
    type: slug,
    status: known?.status ?? storedStatus ?? (typeof legacy?.status === 'number' ? legacy.status : UNKNOWN_FAILURE.status),
    title: known?.title ?? (typeof legacy?.title === 'string' ? legacy.title : UNKNOWN_FAILURE.title),
  };
}

function requestProblem(
  slug: RequestProblemSlug,
  detail: string,
  extensions: Record<string, unknown>,
  headers?: Record<string, string>,
  /** `title` names a narrower case of the slug (429 after failed authentications, 404 of an unknown interaction). */
  more: { status?: number; title?: string; cause?: unknown } = {},
): ProblemError {
  const { status, title } = requestProblems[slug];
  return new ProblemError({ status: more.status ?? status, type: slug, title: more.title ?? title, detail, extensions, headers, cause: more.cause });
}

/** Sent with every 401 of the tenant API, so a client knows which credential is asked for. */
const BEARER_CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="onceflow"' };

/** The constructors of every problem the facade's routes and hooks answer with. */
export const problems = {
  keyMissing: (operationType: string) =>
    requestProblem('idempotency-key-missing', `POST /v1/operations/${operationType} requires an Idempotency-Key header`, { operationType }),
  keyInvalid: (operationType: string | undefined, detail: string) =>
    requestProblem('idempotency-key-invalid', detail, operationType === undefined ? {} : { operationType }),
  /** A request refused before or instead of its schema: bad JSON, a malformed URL or query, a schema violation (`issues`). */
  invalidRequest: (detail: string, issues: unknown[] = []) => requestProblem('invalid-request', detail, { issues }),
  invalidQuery: (detail: string, issues: unknown[] = []) => requestProblem('invalid-request', detail, { issues }),
  /** Any other 4xx Fastify raised, keeping its status. */
  badRequest: (status: number, detail: string) => requestProblem('bad-request', detail, {}, undefined, { status }),
  routeNotFound: (method: string, path: string) => requestProblem('not-found', `no route for ${method} ${path}`, {}),
  payloadTooLarge: (detail: string) => requestProblem('payload-too-large', detail, {}),
  unsupportedMediaType: () => requestProblem('unsupported-media-type', 'send the body as application/json', {}),
  rateLimited: (perMinute: number, retryAfterSeconds: number) =>
    requestProblem('rate-limited', `this tenant may send ${perMinute} requests per minute; retry after ${retryAfterSeconds} s`, {}, {
      'Retry-After': String(retryAfterSeconds),
    }),
  /** A dependency is unreachable; the details stay in the log (`cause`). */
  unavailable: (dependency: 'PostgreSQL' | 'Temporal', retryAfterSeconds: number, cause: unknown) =>
    requestProblem(
      'service-unavailable',
      `${dependency} is unreachable right now; retrying with the same Idempotency-Key is safe`,
      {},
      { 'Retry-After': String(retryAfterSeconds) },
      { cause },
    ),
  /** A /v1 request without a known API key (`detail` says which way it failed). */
  unauthorized: (detail: string) => requestProblem('unauthorized', detail, {}, BEARER_CHALLENGE),
  /** An address over its failed authentications per minute; checked before the key lookup, so guessing costs no query. */
  authenticationsBlocked: (perMinute: number, retryAfterSeconds: number) =>
    requestProblem(
      'rate-limited',
      `this address sent ${perMinute} requests with a missing or unknown API key within a minute; retry after ${retryAfterSeconds} s`,
      {},
      { 'Retry-After': String(retryAfterSeconds) },
      { title: 'Too many failed authentications' },
    ),
  /** GET /metrics without ONCEFLOW_METRICS_TOKEN, when one is set. */
  metricsUnauthorized: () =>
    requestProblem('unauthorized', 'metrics need Authorization: Bearer <ONCEFLOW_METRICS_TOKEN>', {}, { 'WWW-Authenticate': 'Bearer realm="onceflow-metrics"' }),
  /** The codec endpoint without the operator credential; Basic, so the Temporal UI's browser asks for it (`cors` lets the UI read the answer). */
  codecUnauthorized: (cors: Record<string, string>) =>
    requestProblem(
      'unauthorized',
      'the codec endpoint needs the operator credential (ONCEFLOW_CODEC_TOKEN) as a Bearer token or the Basic password',
      {},
      { 'WWW-Authenticate': 'Basic realm="onceflow-codec"', ...cors },
    ),
  /** A payload sealed with a key this process lacks, or tampered with. */
  payloadUndecodable: (detail: string, cors: Record<string, string>) => requestProblem('payload-undecodable', detail, {}, cors),
  /** A list `cursor` this API did not hand out (subscriptions, dead letters). */
  invalidCursor: (cause: unknown) => requestProblem('invalid-request', 'cursor: not one this list returned', {}, undefined, { cause }),
  /** A Gemini webhook refused: no secret configured (`detail` says so) or a signature that does not verify. */
  invalidSignature: (detail: string) => requestProblem('invalid-signature', detail, {}),
  /** A signed Gemini webhook naming an interaction the ledger does not hold (yet: a redelivery may succeed). */
  unknownInteraction: (detail: string) => requestProblem('not-found', detail, {}, undefined, { title: 'Unknown interaction' }),
  scheduleKeyMissing: () => requestProblem('idempotency-key-missing', 'POST /v1/schedules requires an Idempotency-Key header', {}),
  scheduleKeyReused: (idempotencyKey: string, scheduleId: string) =>
    requestProblem('idempotency-key-reused', 'this key created a different schedule; use a new key for a new schedule', { idempotencyKey, scheduleId }),
  scheduleInvalidCursor: () =>
    requestProblem('invalid-request', 'the cursor is not one this API returned', { issues: [] }, undefined, { title: 'Invalid cursor' }),
  scheduleNotFound: () => requestProblem('schedule-not-found', 'no such schedule for this tenant', {}),
  subscriptionNotFound: () => requestProblem('subscription-not-found', 'no such subscription for this tenant', {}),
  /** Names the rule, never the address a name resolved to (that would map the network for the tenant). */
  subscriptionUrlNotAllowed: (rule: string, cause: unknown) =>
    requestProblem(
      'subscription-url-not-allowed',
      `the URL's host is or resolves to a ${rule} address; subscribers must be reachable at a public address`,
      { rule },
      undefined,
      { cause },
    ),
  subscriptionLimitReached: (limit: number) =>
    requestProblem('subscription-limit-reached', `a tenant may have at most ${limit} subscriptions; delete one first`, { limit }),
  /** Anything unexpected; 5xx details never leave the process. */
  internal: (cause: unknown) => requestProblem('internal-error', 'something went wrong on our side; it has been logged', {}, undefined, { cause }),
  notFound: (operationType: string, idempotencyKey: string) =>
    requestProblem('operation-not-found', `no live ${operationType} operation has this idempotency key`, { idempotencyKey, operationType }),
  unknownType: (operationType: string, known: readonly string[]) =>
    requestProblem('unknown-operation-type', `"${operationType}" is not an operation type; known types: ${known.join(', ')}`, { operationType }),
  inProgress: (context: { idempotencyKey: string; operationType: string; expiresAt: string; progress: unknown }, headers: Record<string, string>) =>
    requestProblem(
      'operation-in-progress',
      'the first request with this key is still running; retry later or send Prefer: wait=N',
      context,
      headers,
    ),
  keyReused: (
    context: { idempotencyKey: string; operationType: string; expiresAt: string; differences: string[]; fingerprintVersion: number },
    headers: Record<string, string>,
  ) =>
    requestProblem(
      'idempotency-key-reused',
      'this key was first used with a different request body (see `differences`); use a new key for a new request',
      context,
      headers,
    ),
};
