/**
 * The `type` strings of ApplicationFailures: the contract between activities
 * (which throw them) and workflows (which branch on them). Written once here.
 */
export const FailureType = {
  /** Gemini refused the request itself (400, 401, 403): retrying cannot help, nor can another model. */
  GeminiRejected: 'GeminiRejected',
  /**
   * 404: what the call named is unknown to Gemini. For a paid call that is the
   * model (retired or misspelt), a property of that model alone: never retried,
   * and the workflow moves on to the next model of the chain.
   */
  GeminiNotFound: 'GeminiNotFound',
  /** Gemini blocked the prompt or the answer for safety: retrying cannot help. */
  GeminiSafetyBlocked: 'GeminiSafetyBlocked',
  /** 429: retried after the server's retry delay. */
  GeminiRateLimited: 'GeminiRateLimited',
  /** 5xx, timeouts, dropped connections: retried with backoff. */
  GeminiUnavailable: 'GeminiUnavailable',
  /** PostgreSQL unreachable or a serialization failure: retried. */
  DatabaseUnavailable: 'DatabaseUnavailable',
  /** A programming or data error that retrying cannot fix. */
  InvalidState: 'InvalidState',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types that must never be retried by an activity retry policy. */
export const nonRetryableFailureTypes: FailureType[] = [
  FailureType.GeminiRejected,
  FailureType.GeminiNotFound,
  FailureType.GeminiSafetyBlocked,
  FailureType.InvalidState,
];
