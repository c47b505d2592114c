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
 * How an operation failed, as its workflow says it (the `type` of its
 * OperationError): what happened, never what it means on the wire. The HTTP
 * layer alone maps each to a status and title (src/http/problems.ts).
 */
export const OperationFailure = {
  /** Gemini refused the request itself (400, 401, 403); another model would too. */
  PromptRejected: 'prompt-rejected',
  /** Gemini's safety filters blocked the prompt or the answer. */
  PromptBlocked: 'prompt-blocked',
  /** Every model failed on transient causes, or the provider could not finish the work. */
  ProviderFailure: 'provider-failure',
  /** The tenant's spending limit stopped the operation before a paid call. */
  BudgetExceeded: 'budget-exceeded',
  /** Gemini refused the deployment's own credentials (401/403 on the API key): the service's fault, not the tenant's; the key is released. */
  ProviderUnavailable: 'provider-unavailable',
  /** The operation was canceled before it finished. */
  OperationCanceled: 'operation-canceled',
  /** Its run ended (terminated, timed out, lost) without recording an outcome; closed by the reconciler. */
  OperationAbandoned: 'operation-abandoned',
} as const;
export type OperationFailure = (typeof OperationFailure)[keyof typeof OperationFailure];

/**
 * Activity failures that end the operation at once, without trying the next
 * model, and how the operation fails (its failure slug, and whether the key is
 * released so that a repeat starts a new run).
 */
export const operationEndingFailures: Partial<Record<FailureType, Omit<OperationError, 'detail'>>> = {
  [FailureType.BudgetExceeded]: { type: OperationFailure.BudgetExceeded, retryable: false },
  [FailureType.GeminiCredentialsRejected]: { type: OperationFailure.ProviderUnavailable, retryable: true },
};
