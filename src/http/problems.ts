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
  /** Gemini refused the deployment's own credentials: the service is unavailable, not the request wrong; the key is released for a retry. */
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
  more: { status?: number; cause?: unknown } = {},
): ProblemError {
  const { status, title } = requestProblems[slug];
  return new ProblemError({ status: more.status ?? status, type: slug, title, detail, extensions, headers, cause: more.cause });
}

/** The constructors of every problem an operation route answers with. */
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
