/**
 * How every operation workflow ends: the shapes handed to the completeOperation
 * activity, shared with activities/ (which imports nothing else from here).
 */
import type { OperationFailure } from './failure-types';

/**
 * What went wrong, as the workflow saw it, and whether a new run may retry it.
 * No HTTP here: the facade maps `type` to a status and title (src/http/problems.ts).
 */
export interface OperationError {
  /** What happened, from the one table OperationFailure (also the problem slug on the wire). */
  type: OperationFailure;
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
  | { outcome: 'failed'; error: OperationError; usage?: OperationUsage }
  /** Stopped on request (POST …/cancel): `error` says so (operation-canceled), `usage` bills what was already paid. */
  | { outcome: 'canceled'; error: OperationError; usage?: OperationUsage };

/** What a successful Gemini answer finishes with: the stored result (no text in the run's summary) and the bill's usage. */
export function succeededOutcome(answer: { text: string; model: string; usage: Omit<OperationUsage, 'model'>; attempts: unknown[] }): OperationOutcome & { outcome: 'succeeded' } {
  return {
    outcome: 'succeeded',
    result: { text: answer.text, model: answer.model, usage: answer.usage, attempts: answer.attempts },
    usage: { model: answer.model, ...answer.usage },
  };
}

/**
 * What a completed report finishes with, written once for both places that
 * finish it (the poll that reads the end, and the workflow when that poll
 * could not): the same stored result whichever finishes. `model` is Gemini's
 * own name for it, or the submitted model when the read carries none.
 */
export function reportSucceededOutcome(report: {
  text?: string;
  model: string;
  usage?: Omit<OperationUsage, 'model'>;
  attempts: unknown[];
  interactionId: string;
  completedBy: 'webhook' | 'poll';
}): OperationOutcome & { outcome: 'succeeded' } {
  const usage = report.usage ?? { promptTokens: 0, outputTokens: 0, totalTokens: 0 };
  return {
    outcome: 'succeeded',
    result: { text: report.text ?? '', model: report.model, usage, attempts: report.attempts, interactionId: report.interactionId, completedBy: report.completedBy },
    usage: { model: report.model, ...usage },
  };
}
