/**
 * How every operation workflow ends: the shapes handed to the completeOperation
 * activity. Types only, shared with activities/.
 */

/** A failure as the client will see it (problem+json fields) and whether a new run may retry it. */
export interface OperationError {
  /** Problem type slug, e.g. `provider-failure` (becomes https://onceflow.dev/problems/<slug>). */
  type: string;
  title: string;
  /** HTTP status a repeat answers with, e.g. 422 rejected prompt, 502 provider failure. */
  status: number;
  detail: string;
  /** True when retries were exhausted on a transient cause; the type may release the key. */
  retryable: boolean;
  /** The provider calls that led here (e.g. Gemini attempts), for the client and the operator. */
  attempts?: unknown[];
}

export interface OperationUsage {
  model: string;
  promptTokens: number;
  outputTokens: number;
  totalTokens: number;
}

export type OperationOutcome =
  | { outcome: 'succeeded'; result: unknown; usage?: OperationUsage }
  | { outcome: 'failed'; error: OperationError; usage?: OperationUsage };
