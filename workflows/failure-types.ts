import type { OperationError } from './operation-outcome';

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
  /**
   * Gemini refused the deployment's own API key (401, 403, an invalid or
   * expired key): not the request's fault, and no retry helps until an operator
   * fixes the key. The operation ends as the service unavailable and releases its key.
   */
  GeminiCredentialsRejected: 'GeminiCredentialsRejected',
  /** The paid call would exceed the tenant's spend cap: it was not made. */
  BudgetExceeded: 'BudgetExceeded',
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
  FailureType.GeminiCredentialsRejected,
  FailureType.BudgetExceeded,
  FailureType.InvalidState,
];

/**
 * Activity failures that end the operation at once, without trying the next
 * model, and how the operation fails (its problem slug, status, and whether
 * the key is released so that a repeat starts a new run).
 */
export const operationEndingFailures: Partial<Record<FailureType, Omit<OperationError, 'detail'>>> = {
  [FailureType.BudgetExceeded]: { type: 'budget-exceeded', title: 'Spend cap reached', status: 402, retryable: false },
  [FailureType.GeminiCredentialsRejected]: { type: 'provider-unavailable', title: 'Gemini is unavailable to this service', status: 503, retryable: true },
};
