import { ApplicationFailure } from '@temporalio/activity';
import type pg from 'pg';
import type { GeminiClient, InteractionState } from '../src/integrations/gemini/client';
import { recordInteractionTokens } from '../src/integrations/gemini/attempts';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import { recordInteractionEnd } from '../src/integrations/gemini/interaction-ledger';
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
    const ended = await recordInteractionEnd(deps.pool, {
      interactionId: input.interactionId,
      status: state.status === 'completed' ? 'completed' : 'failed',
      completedBy: 'cancel',
      ...(state.status === 'completed' ? {} : { error: `canceled on request (Gemini status ${state.status})` }),
    });
    if (ended && state.usage) {
      await recordInteractionTokens(deps.pool, { operationId: input.operationId, model: ended.model, usage: state.usage });
      await settleSpend(deps.pool, { operationId: input.operationId, step: ended.step, actualMicroUsd: estimateCostMicros({ model: ended.model, ...state.usage }) });
    }
    deps.logger?.info({ correlationId: input.operationId, interactionId: input.interactionId, status: state.status }, 'interaction of a canceled report stopped');
    return state;
  });
}
