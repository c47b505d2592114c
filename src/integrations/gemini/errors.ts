import { ApplicationFailure } from '@temporalio/common';
import { geminiBackoff } from '../../../workflows/activity-options';
import { FailureType } from '../../../workflows/failure-types';
import { fullJitterBackoffMs } from '../../common/backoff';
import { GuardDatabaseError } from '../../effects/errors';
import { BudgetExceededError } from '../../spend/errors';
import { attemptOutcomeOf, type GeminiAttempt } from './attempts';
import { storableText } from './text';
import { AppError } from '../../errors';

/** What a failed Gemini call means for retrying. */
export interface GeminiErrorClass {
  type: FailureType;
  nonRetryable: boolean;
  /** The server's RetryInfo delay, honoured as the next retry's delay. */
  retryDelayMs?: number;
  status?: number;
  message: string;
}

/** Thrown when Gemini answered 200 but blocked the prompt or the answer for safety. */
export class GeminiSafetyBlockError extends AppError<{ reason: string }> {
  override readonly name = 'GeminiSafetyBlockError';
  constructor(readonly reason: string) {
    super(`Gemini blocked the request: ${reason}`, { context: { reason } });
  }
}

/**
 * google.rpc.ErrorInfo reasons with which Gemini refuses the API key itself.
 * Gemini answers an invalid key with 400 INVALID_ARGUMENT, so the status alone
 * cannot tell it from a rejected prompt; the reason can.
 */
const KEY_REASONS = new Set(['API_KEY_INVALID', 'API_KEY_EXPIRED', 'API_KEY_SERVICE_BLOCKED', 'API_KEY_HTTP_REFERRER_BLOCKED', 'API_KEY_IP_ADDRESS_BLOCKED', 'SERVICE_DISABLED', 'CONSUMER_SUSPENDED', 'ACCESS_TOKEN_EXPIRED']);

/**
 * Maps anything @google/genai throws onto a failure type. The deployment's
 * own credentials refused (any 401 or 403: a request carries only a prompt and
 * an allowlisted model, so a permission failure is the key's or project's; or
 * a 400 whose reason names the key) is GeminiCredentialsRejected, never the
 * tenant's fault. Other 400s and safety blocks are final; 404 (an unknown model) is final for that model;
 * 429 waits for the server's retry delay; 5xx, timeouts and dropped
 * connections are retried with backoff.
 */
export function classifyGeminiError(error: unknown): GeminiErrorClass {
  if (error instanceof GeminiSafetyBlockError) {
    return { type: FailureType.GeminiSafetyBlocked, nonRetryable: true, message: error.message };
  }
  const e = error as { name?: string; status?: number; message?: string; body?: unknown; cause?: { code?: string } };
  // models.* throws ApiError (the error body in `message`); the interactions
  // client throws APIError subclasses (RateLimitError, BadRequestError, …) with
  // the raw body in `body`. Both carry the HTTP status in `status`.
  const raw = typeof e?.body === 'string' ? e.body : e?.message;
  // Stored in gemini_attempts and the operation's error: text PostgreSQL accepts, whatever Gemini wrote.
  const message = storableText(summarise(raw ?? String(error)));
  if (typeof e?.status === 'number' && e.status >= 400) {
    if (e.status === 429) return { type: FailureType.GeminiRateLimited, nonRetryable: false, retryDelayMs: retryDelayMs(raw), status: 429, message };
    if (e.status === 404) return { type: FailureType.GeminiNotFound, nonRetryable: true, status: 404, message };
    if (e.status === 401 || e.status === 403 || (e.status === 400 && keyReason(raw))) {
      return { type: FailureType.GeminiCredentialsRejected, nonRetryable: true, status: e.status, message };
    }
    if (e.status === 400) return { type: FailureType.GeminiRejected, nonRetryable: true, status: e.status, message };
    return { type: FailureType.GeminiUnavailable, nonRetryable: false, status: e.status, message };
  }
  // fetch failures (connection reset, dropped answer) and aborts (our timeout)
  return { type: FailureType.GeminiUnavailable, nonRetryable: false, message: e?.cause?.code ? `${message} (${e.cause.code})` : message };
}

/** Whether an error body carries an ErrorInfo reason that refuses the API key (see KEY_REASONS). */
function keyReason(raw: string | undefined): boolean {
  for (const match of (raw ?? '').matchAll(/"reason"\s*:\s*"([A-Z_]+)"/g)) {
    if (KEY_REASONS.has(match[1]!)) return true;
  }
  return false;
}

/** google.rpc.RetryInfo `retryDelay` ("2s", "1.5s") from the error body the SDK puts in the message. */
function retryDelayMs(message: string | undefined): number | undefined {
  const match = /"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"/.exec(message ?? '');
  return match ? Math.round(Number(match[1]) * 1000) : undefined;
}

function summarise(message: string): string {
  try {
    const body = JSON.parse(message) as { error?: { code?: number; status?: string; message?: string } };
    if (body.error) return `${body.error.code ?? ''} ${body.error.status ?? ''}: ${body.error.message ?? ''}`.trim();
  } catch {
    // not a JSON error body
  }
  return message.split('\n')[0]!.slice(0, 300);
}

/** The `details[0]` of a Gemini activity's ApplicationFailure. */
export interface GeminiFailureDetails {
  status: number | null;
  model: string;
  /** Every recorded call of the operation when this attempt failed; absent when PostgreSQL could not be read. */
  attempts?: GeminiAttempt[];
}

/**
 * What a Gemini activity attempt's error means, with the failure it throws:
 * - cancelled: Temporal cancelled the attempt (or timed it out); its own reason;
 * - refused: the spend cap refused the call before it was made (final);
 * - database: PostgreSQL failed around the call (retried); `paid` when the
 *   call was made and its answer could not be stored, so the retry pays again;
 * - gemini: the call itself failed, classified (400s and safety blocks are final).
 */
export type GeminiCallFailure =
  | { kind: 'cancelled'; failure: unknown }
  | { kind: 'refused'; failure: ApplicationFailure; refusal: BudgetExceededError }
  | { kind: 'database'; failure: ApplicationFailure; paid: boolean }
  | { kind: 'gemini'; failure: ApplicationFailure; classified: GeminiErrorClass; outcome: GeminiAttempt['outcome'] };

/**
 * The activity's edge: what the paid-call guard threw, as the failure the
 * workflow branches on (its `type`). A retryable Gemini failure carries its
 * next retry's delay: the server's RetryInfo delay for a 429, otherwise full
 * jitter (src/common/backoff.ts) under geminiBackoff, because Temporal's own
 * retry backoff has no jitter.
 */
export function toGeminiCallFailure(
  error: unknown,
  context: {
    /** The attempt's cancellation signal: aborted means Temporal cancelled or timed out the attempt. */
    signal?: AbortSignal;
    model: string;
    /** The activity attempt, from 1. */
    attempt: number;
    /** The operation's recorded calls, handed to the workflow in the failure's details. */
    attempts?: GeminiAttempt[];
    /** A number in [0, 1) for the jitter; default Math.random. */
    random?: () => number;
  },
): GeminiCallFailure {
  if (context.signal?.aborted) return { kind: 'cancelled', failure: context.signal.reason };
  if (error instanceof BudgetExceededError) {
    return { kind: 'refused', refusal: error, failure: ApplicationFailure.create({ type: FailureType.BudgetExceeded, message: error.message, nonRetryable: true, cause: error }) };
  }
  if (error instanceof GuardDatabaseError) {
    return { kind: 'database', paid: error.phase === 'storing', failure: ApplicationFailure.create({ type: FailureType.DatabaseUnavailable, message: error.message, cause: error }) };
  }
  const classified = classifyGeminiError(error);
  const failure = ApplicationFailure.create({
    type: classified.type,
    message: `${context.model}: ${classified.message}`,
    nonRetryable: classified.nonRetryable,
    nextRetryDelay: classified.nonRetryable ? undefined : classified.retryDelayMs ?? geminiRetryDelayMs(context.attempt, context.random),
    details: [{ status: classified.status ?? null, model: context.model, ...(context.attempts ? { attempts: context.attempts } : {}) } satisfies GeminiFailureDetails],
  });
  return { kind: 'gemini', failure, classified, outcome: attemptOutcomeOf[classified.type] };
}

/** The delay before the retry that follows activity attempt `attempt`: full jitter, at least 100 ms. */
export function geminiRetryDelayMs(attempt: number, random?: () => number): number {
  return Math.max(100, fullJitterBackoffMs({ retryIndex: attempt - 1, baseMs: geminiBackoff.initialMs, capMs: geminiBackoff.maxMs, random }));
}
