/**
 * Errors the Onceflow client throws. Every error carries the Idempotency-Key
 * of the call and how many HTTP attempts were made, so a caller can retry the
 * same call later (same key: never a second operation) or look it up with
 * `client.get(type, key)`.
 */
import type { OperationResource } from './types';

export interface OnceflowErrorContext {
  /** The key sent on every attempt of this call; undefined for reads. */
  idempotencyKey?: string;
  /** HTTP attempts made before giving up (1 when the first answer was final). */
  attempts: number;
}

/** Base class of everything the client throws. */
export class OnceflowError extends Error {
  override readonly name: string = 'OnceflowError';
  readonly idempotencyKey: string | undefined;
  readonly attempts: number;
  constructor(message: string, context: OnceflowErrorContext, options?: { cause?: unknown }) {
    super(message, options);
    this.idempotencyKey = context.idempotencyKey;
    this.attempts = context.attempts;
  }
}

/** An RFC 9457 problem body as the facade sends it. */
export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  idempotencyKey?: string;
  operationType?: string;
  /** Set on replays of a failed operation: the operation resource. */
  operation?: OperationResource;
  /** Every answer about a key (v1.1): when it expires, RFC 3339. */
  expiresAt?: string;
  /** 422 idempotency-key-reused: JSON Pointers to the essential fields that differ from the first request. */
  differences?: string[];
  /** 422 idempotency-key-reused: the fingerprint version the key was stored with. */
  fingerprintVersion?: number;
  /** 409 operation-in-progress: where the first request's run stands. */
  progress?: { step: string; model: string | null; attempt: number; attempts: number; startedAt: string; interaction: { state: string } | null };
  [extension: string]: unknown;
}

/**
 * Thrown when the server answered with a status that is final for this call
 * (400, 401, 404, 413, 415, 422, 502, a replayed failure …) or a retryable
 * one (409, 429, 503) when the attempts or the deadline ran out.
 */
export class OnceflowProblemError extends OnceflowError {
  override readonly name = 'OnceflowProblemError';
  readonly status: number;
  /** The full problem `type` URI, e.g. `https://onceflow.dev/problems/operation-in-progress`. */
  readonly type: string;
  /** The last path segment of `type`, e.g. `operation-in-progress` (`about:blank` bodies give `http-<status>`). */
  readonly problem: string;
  readonly title: string;
  readonly detail: string;
  readonly body: ProblemBody;
  /** `Idempotent-Replayed: true`: the server answered from the stored outcome of an earlier request. */
  readonly replayed: boolean;
  /** `Idempotency-First-Seen` (epoch ms) as a Date, on replays. */
  readonly firstSeenAt: Date | undefined;
  /** `Retry-After` in ms, when the server sent one. */
  readonly retryAfterMs: number | undefined;
  /** The operation resource, when the problem is a replayed operation failure. */
  readonly operation: OperationResource | undefined;

  constructor(
    details: { status: number; body: ProblemBody; replayed: boolean; firstSeenAt: Date | undefined; retryAfterMs: number | undefined },
    context: OnceflowErrorContext,
  ) {
    const type = typeof details.body.type === 'string' ? details.body.type : 'about:blank';
    const detail = typeof details.body.detail === 'string' ? details.body.detail : '';
    super(`${details.status} ${type}${detail ? `: ${detail}` : ''} (after ${context.attempts} attempt${context.attempts === 1 ? '' : 's'})`, context);
    this.status = details.status;
    this.type = type;
    this.problem = type === 'about:blank' ? `http-${details.status}` : (type.split('/').pop() ?? type);
    this.title = typeof details.body.title === 'string' ? details.body.title : '';
    this.detail = detail;
    this.body = details.body;
    this.replayed = details.replayed;
    this.firstSeenAt = details.firstSeenAt;
    this.retryAfterMs = details.retryAfterMs;
    this.operation = details.body.operation;
  }
}

/**
 * Thrown when no HTTP answer arrived (refused, reset, timed-out attempt) and
 * the attempts or the deadline ran out. The server may or may not have
 * accepted the request: repeating the call with the same key is safe.
 */
export class OnceflowNetworkError extends OnceflowError {
  override readonly name = 'OnceflowNetworkError';
}

/** Thrown when the call's overall deadline passed (before or during an attempt). `cause` is the last attempt's error, if any. */
export class OnceflowDeadlineError extends OnceflowError {
  override readonly name = 'OnceflowDeadlineError';
}

/** Thrown when the caller's AbortSignal fired; no further attempts are made. */
export class OnceflowAbortError extends OnceflowError {
  override readonly name = 'OnceflowAbortError';
}
