import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { GeminiClient, InteractionState } from '../src/integrations/gemini/client';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import type { Logger } from '../src/observability/logger';
import { estimateCostMicros } from '../src/operations/pricing';
import { settleSpend } from '../src/spend/ledger';
import { whileHeartbeating } from './heartbeat';

export interface CancelInteractionInput {
  operationId: string;
  interactionId: string;
}

/**
 * Stops a submitted background interaction of a canceled report, so that
 * Gemini does not keep working (and billing) for an answer nobody will read.
 * Gemini refuses to cancel one that already ended: then its state is read
 * instead. Either way the ledger row is closed once, and tokens Gemini
 * reports are written to the submission's attempt and settle the spend
 * reservation: the canceled operation's bill (the workflow sums the paid
 * attempts) is what Gemini says was used. Without reported usage the
 * reservation stays as it is: what a stopped run cost is unknown, and the
 * cap must not forget it.
 */
export function createCancelInteraction(deps: { pool: pg.Pool; gemini: GeminiClient; logger?: Logger }) {
  return (input: CancelInteractionInput): Promise<InteractionState> => whileHeartbeating(async (signal) => {
    let state: InteractionState;
    try {
      state = await deps.gemini.cancelInteraction(input.interactionId, { signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const failure = classifyGeminiError(error);
      // 400: it had already ended (its state is read below); anything else is Gemini's trouble, retried.
      if (failure.status !== 400) {
        throw ApplicationFailure.create({ type: failure.type, message: `cancelling interaction ${input.interactionId}: ${failure.message}`, nonRetryable: failure.nonRetryable });
      }
      state = await deps.gemini.getInteraction(input.interactionId, { signal });
    }
    const { rows } = await deps.pool.query<{ model: string; step: string }>(
      `UPDATE gemini_interactions
          SET status = CASE WHEN $2 = 'completed' THEN 'completed' ELSE 'failed' END,
              completed_by = 'cancel', completed_at = now(), error = $3
        WHERE interaction_id = $1 AND completed_at IS NULL
        RETURNING model, step`,
      [input.interactionId, state.status, state.status === 'completed' ? null : `canceled on request (Gemini status ${state.status})`],
    );
    if (rows[0] && state.usage) {
      await deps.pool.query(
        `UPDATE gemini_attempts SET prompt_tokens = $3, output_tokens = $4
          WHERE operation_id = $1 AND model = $2 AND outcome = 'succeeded' AND prompt_tokens IS NULL`,
        [input.operationId, rows[0].model, state.usage.promptTokens, state.usage.outputTokens],
      );
      await settleSpend(deps.pool, { operationId: input.operationId, step: rows[0].step, actualMicroUsd: estimateCostMicros({ model: rows[0].model, ...state.usage }) });
    }
    deps.logger?.info({ correlationId: input.operationId, interactionId: input.interactionId, status: state.status }, 'interaction of a canceled report stopped');
    return state;
  });
}
