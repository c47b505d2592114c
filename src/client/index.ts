export { OnceflowClient, type OnceflowClientOptions } from './client';
export {
  OnceflowAbortError,
  OnceflowDeadlineError,
  OnceflowError,
  OnceflowNetworkError,
  OnceflowProblemError,
  type OnceflowErrorContext,
  type ProblemBody,
} from './errors';
export { backoffDelayMs, DEFAULT_RETRY_POLICY, isRetryableStatus, parseRetryAfterMs, RETRYABLE_STATUSES } from './retry';
export type * from './types';
