import { FailureType } from '../../../workflows/failure-types';

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
export class GeminiSafetyBlockError extends Error {
  override readonly name = 'GeminiSafetyBlockError';
  constructor(readonly reason: string) {
    super(`Gemini blocked the request: ${reason}`);
  }
}

/**
 * Maps anything @google/genai throws onto a failure type: 400/401/403 and
 * safety blocks are final; 404 (an unknown model) is final for that model;
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
  const message = summarise(raw ?? String(error));
  if (typeof e?.status === 'number' && e.status >= 400) {
    if (e.status === 429) return { type: FailureType.GeminiRateLimited, nonRetryable: false, retryDelayMs: retryDelayMs(raw), status: 429, message };
    if (e.status === 404) return { type: FailureType.GeminiNotFound, nonRetryable: true, status: 404, message };
    if ([400, 401, 403].includes(e.status)) return { type: FailureType.GeminiRejected, nonRetryable: true, status: e.status, message };
    return { type: FailureType.GeminiUnavailable, nonRetryable: false, status: e.status, message };
  }
  // fetch failures (connection reset, dropped answer) and aborts (our timeout)
  return { type: FailureType.GeminiUnavailable, nonRetryable: false, message: e?.cause?.code ? `${message} (${e.cause.code})` : message };
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
