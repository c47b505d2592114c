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
 * (and so charged) before the cancel, on the model of the last of them. An
 * abandoned call (aborted in flight) has no answer and no tokens. With none
 * paid the bill is still written, at zero, on `fallbackModel`: every finished
 * operation has its one usage-ledger entry.
 */
export function paidUsage(attempts: readonly GeminiAttempt[], fallbackModel: string): OperationUsage {
  const paid = attempts.filter((attempt) => attempt.outcome === 'succeeded' && (attempt.promptTokens !== undefined || attempt.outputTokens !== undefined));
  const promptTokens = paid.reduce((sum, attempt) => sum + (attempt.promptTokens ?? 0), 0);
  const outputTokens = paid.reduce((sum, attempt) => sum + (attempt.outputTokens ?? 0), 0);
  const model = paid[paid.length - 1]?.model ?? attempts[attempts.length - 1]?.model ?? fallbackModel;
  return { model, promptTokens, outputTokens, totalTokens: promptTokens + outputTokens };
}

/**
 * The outcome completeOperation writes for a canceled run. `fallbackModel`
 * names the bill when no call was made: the model the run was on, or the
 * first of its chain.
 */
export function canceledOutcome(attempts: GeminiAttempt[], detail: string, fallbackModel: string): Extract<OperationOutcome, { outcome: 'canceled' }> {
  return {
    outcome: 'canceled',
    error: { type: OperationFailure.OperationCanceled, detail, retryable: false, attempts },
    usage: paidUsage(attempts, fallbackModel),
  };
}
