import { FailureType } from '../../../workflows/failure-types';
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
