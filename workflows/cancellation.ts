/**
 * How an operation workflow ends when its run is cancelled (POST
 * /v1/operations/{type}/{key}/cancel → the run's Temporal cancellation).
 *
 * Only runs that received a cancel request take these paths: no recorded
 * history of an earlier version holds one (cancelling was not offered), so the
 * commands below are new only where the old code would have failed the run.
 */
import type { GeminiAttempt } from '../activities/gemini-generate';
import { OperationFailure } from './failure-types';
import type { OperationOutcome, OperationUsage } from './operation-outcome';

/**
 * What a canceled operation bills: the tokens of its calls Gemini answered
 * (and so charged) before the cancel, on the model of the last of them;
 * undefined when none was paid. An abandoned call (aborted in flight) has no
 * answer and no tokens.
 */
export function paidUsage(attempts: readonly GeminiAttempt[]): OperationUsage | undefined {
  const paid = attempts.filter((attempt) => attempt.outcome === 'succeeded' && (attempt.promptTokens !== undefined || attempt.outputTokens !== undefined));
  if (paid.length === 0) return undefined;
  const promptTokens = paid.reduce((sum, attempt) => sum + (attempt.promptTokens ?? 0), 0);
  const outputTokens = paid.reduce((sum, attempt) => sum + (attempt.outputTokens ?? 0), 0);
  return { model: paid[paid.length - 1]!.model, promptTokens, outputTokens, totalTokens: promptTokens + outputTokens };
}

/** The outcome completeOperation writes for a canceled run. */
export function canceledOutcome(attempts: GeminiAttempt[], detail: string): Extract<OperationOutcome, { outcome: 'canceled' }> {
  const usage = paidUsage(attempts);
  return {
    outcome: 'canceled',
    error: { type: OperationFailure.OperationCanceled, detail, retryable: false, attempts },
    ...(usage ? { usage } : {}),
  };
}
