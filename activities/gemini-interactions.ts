import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { guardForeignCall, type GuardedCall } from '../src/effects/guard';
import type { Logger } from '../src/observability/logger';
import { geminiStoreRetryMs } from '../workflows/activity-options';
import { earlierAttemptReachedGemini, listAttempts, recordAttempt, recordInteractionTokens, type AttemptKey, type GeminiAttempt } from '../src/integrations/gemini/attempts';
import { callReport } from '../src/integrations/gemini/call-report';
import type { GeminiClient, InteractionState } from '../src/integrations/gemini/client';
import { classifyGeminiError, toGeminiCallFailure } from '../src/integrations/gemini/errors';
import { countSubmission, recordInteractionEnd, recordSubmitted, uncountSubmission } from '../src/integrations/gemini/interaction-ledger';
import { reportIfCredentialsRejected, type GeminiCallOwner, type GeminiMetrics } from '../src/integrations/gemini/metrics';
import { reportSucceededOutcome } from '../workflows/operation-outcome';
import { finishInActivity, type FinishingDeps } from './finish-in-activity';
import { whileHeartbeating } from './heartbeat';
import { estimateCostMicros } from '../src/operations/pricing';
import { settleSpend } from '../src/spend/ledger';
import { spendCap } from '../src/spend/paid-call';

export interface SubmitInteractionInput extends GeminiCallOwner {
  operationId: string;
  workflowId: string;
  model: string;
  /** The previous model of the chain when this submission is a fallback. */
  fallbackFrom?: string;
  request: { prompt: string; system?: string };
}

export interface SubmitInteractionResult {
  interactionId: string;
  /** True when the ledger already held an id: nothing was submitted (or paid) this time. */
  reused: boolean;
}

/** What pollInteraction returns: Gemini's state and, once it completed, the operation's recorded calls (the result's `attempts[]`). */
export interface PollInteractionResult extends InteractionState {
  attempts?: GeminiAttempt[];
  /** True when this poll finished the operation (result, bill, event); the workflow then ends without finishing again. */
  finished?: true;
}

export interface PollInteractionInput extends GeminiCallOwner {
  operationId: string;
  workflowId: string;
  interactionId: string;
  /** What woke the workflow for this poll; recorded as `completed_by` when the poll sees the end. */
  trigger: 'webhook' | 'poll';
  /**
   * Set by runs that let a completed report finish in the poll that reads its
   * end (finishCompleted); runs recorded before it did not send it, and finish
   * in their workflow. `submittedModel` names the report when Gemini's read does not.
   */
  finishOnSuccess?: { idempotencyKey: string; submittedModel: string };
}

/** How the report workflow waits. Defaults: first poll after 2 s, doubling to 60 s, giving up after 6 h. */
export interface ReportPolling {
  initialMs: number;
  maxMs: number;
  maxWaitMs: number;
}

export const DEFAULT_REPORT_POLLING: ReportPolling = { initialMs: 2_000, maxMs: 60_000, maxWaitMs: 6 * 60 * 60 * 1000 };

export interface InteractionActivityDeps {
  pool: pg.Pool;
  gemini: GeminiClient;
  geminiMetrics: GeminiMetrics;
  logger?: Logger;
  /** GEMINI_MODELS: the chain a report falls back along. */
  modelChain: readonly string[];
  /** Default DEFAULT_REPORT_POLLING. */
  reportPolling?: Partial<ReportPolling>;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
  /** The finishing phase (activities/complete-operation.ts), run by the poll that reads a completed report when the input asks (finishOnSuccess). */
  completeOperation?: FinishingDeps['completeOperation'];
}

const stepOf = (model: string) => `interaction:${model}`;

/**
 * Submits one background interaction per (operation, model), through the
 * side-effect guard (guardForeignCall, src/effects/guard.ts) and the
 * submission ledger (gemini_interactions):
 *
 * 1. with the step held for the whole submission (holdStep: a concurrent
 *    attempt of the same step, e.g. a retry after a timeout while the first
 *    still runs, waits, then reuses the first one's id), one claim transaction
 *    reserves the spend and counts the submission in the ledger, committed
 *    before anything is sent;
 * 2. call Gemini;
 * 3. store the interaction id: effect row, ledger id and attempt row in one
 *    transaction, retried for geminiStoreRetryMs while PostgreSQL is away.
 * Any retry after step 3 reuses the stored id.
 *
 * CRASH WINDOW: between Gemini accepting the create call and that COMMIT. A
 * worker dying there (or an answer lost on the wire) leaves a row with
 * submit_attempts > 0 and no id; the retry cannot tell whether Gemini started
 * an interaction, and submits again. interactions.create takes no idempotency
 * key and there is no lookup by our own label, so nothing we could send closes
 * this window; the ledger row shows when it happened (submit_attempts > 1).
 */
export function createSubmitInteraction(deps: InteractionActivityDeps) {
  const clock = deps.clock ?? Date.now;
  return (input: SubmitInteractionInput): Promise<SubmitInteractionResult> => whileHeartbeating(async (signal) => {
    const { attempt, workflowExecution } = Context.current().info;
    const key = { operationId: input.operationId, step: stepOf(input.model), workflowId: input.workflowId };
    const attemptKey: AttemptKey = { ...key, model: input.model, attempt };
    const log = { correlationId: input.operationId, workflowId: input.workflowId, runId: workflowExecution?.runId, model: input.model, attempt };
    const report = callReport({ ...input, metrics: deps.geminiMetrics, logger: deps.logger, log });
    const spend = spendCap({ ...key, tenantId: input.tenantId, model: input.model, promptText: `${input.request.system ?? ''}${input.request.prompt}` });
    let startedMs = clock();
    let retry = false;
    let guarded: GuardedCall<{ interactionId: string }>;
    try {
      guarded = await guardForeignCall<{ interactionId: string }>(deps.pool, key, {
        holdStep: true,
        // One transaction: the reservation and the submission's count commit together.
        claim: ({ transaction }) => transaction(async (tx) => {
          retry = await earlierAttemptReachedGemini(tx, attemptKey);
          await spend.admit(tx);
          const submissions = await countSubmission(tx, { ...key, model: input.model });
          if (submissions > 1) {
            deps.logger?.warn(
              { ...log, previousSubmissions: submissions - 1 },
              'an earlier submission got no recorded id (lost answer or crash); submitting again may start a second paid interaction',
            );
          }
        }),
        call: async () => {
          report.leaving(retry);
          startedMs = clock();
          const state = await deps.gemini.submitInteraction({ model: input.model, ...input.request, signal });
          return { interactionId: state.id };
        },
        record: async (tx, { interactionId }) => {
          await recordSubmitted(tx, key, interactionId);
          await recordAttempt(tx, attemptKey, { outcome: 'succeeded', durationMs: clock() - startedMs });
        },
        failed: async (db, error) => {
          const failure = toGeminiCallFailure(error, { model: input.model, attempt });
          if (failure.kind !== 'gemini') return;
          // Gemini answered with an error: no interaction was started, so this
          // submission cannot have been paid for. A dropped or timed-out call
          // stays counted: it may have started one.
          if (failure.classified.status !== undefined) await uncountSubmission(db, key);
          await recordAttempt(db, attemptKey, { outcome: failure.outcome, durationMs: clock() - startedMs, error: failure.classified.message });
          await spend.releaseIfUnpaid(db, error);
        },
      }, { storeRetryMs: geminiStoreRetryMs, logger: deps.logger });
    } catch (error) {
      const failure = toGeminiCallFailure(error, { signal, model: input.model, attempt });
      report.failed(failure, clock() - startedMs);
      throw failure.failure;
    }
    const { interactionId } = guarded.result;
    if (guarded.kind === 'reused') {
      report.avoided({ interactionId }, 'interaction submission avoided: recorded id reused');
      return { interactionId, reused: true };
    }
    // Tokens and cost are counted when the report completes (pollInteraction): only then are they known.
    report.paid({ interactionId }, 'interaction submitted');
    return { interactionId, reused: false };
  });
}

/**
 * One free read of an interaction. Short by design: the workflow waits
 * between polls on Temporal timers, so a report that takes an hour holds no
 * worker slot. When the read shows the end, the ledger row records it once.
 */
export function createPollInteraction(deps: InteractionActivityDeps) {
  return (input: PollInteractionInput): Promise<PollInteractionResult> => whileHeartbeating(async (signal) => {
    let state: InteractionState;
    try {
      state = await deps.gemini.getInteraction(input.interactionId, { signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const failure = classifyGeminiError(error);
      reportIfCredentialsRejected(deps.geminiMetrics, failure, { logger: deps.logger, log: { correlationId: input.operationId, interactionId: input.interactionId } });
      throw ApplicationFailure.create({
        type: failure.type,
        message: `interaction ${input.interactionId}: ${failure.message}`,
        nonRetryable: failure.nonRetryable,
        nextRetryDelay: failure.nonRetryable ? undefined : failure.retryDelayMs,
      });
    }
    if (state.terminal) {
      const ended = await recordInteractionEnd(deps.pool, {
        interactionId: input.interactionId, status: state.status === 'completed' ? 'completed' : 'failed', completedBy: input.trigger, error: state.error,
      });
      // The poll that records the end counts the report's tokens and cost:
      // once, however many polls (or retried polls) see the completion.
      if (ended) {
        if (state.status === 'completed' && state.usage) {
          callReport({ ...input, metrics: deps.geminiMetrics, model: ended.model, log: {} }).tokens(state.usage);
        }
        await settleSpend(deps.pool, { operationId: input.operationId, step: stepOf(ended.model), actualMicroUsd: state.usage ? estimateCostMicros({ model: ended.model, ...state.usage }) : 0 });
      }
      if (state.usage) await recordInteractionTokens(deps.pool, { operationId: input.operationId, model: state.model, usage: state.usage });
      // Read here, where the connection already is, instead of by a round trip of the workflow's own.
      if (state.status === 'completed') return finishCompleted(input, { ...state, attempts: await listAttempts(deps.pool, input.operationId) }, signal);
    }
    return state;
  });

  /**
   * A completed report is finished in the poll that read its end
   * (finishInActivity), after the end and its tokens are recorded: no
   * finishing local activity, one history marker fewer. A poll run again
   * after a crash past the finish's COMMIT finds the end recorded (no second
   * count of its tokens) and the stored finish; the paid interaction is never
   * created again, polls only read it. Finishing failed or skipped, the state
   * still returns: failing the poll would only delay the report by its retries.
   */
  async function finishCompleted(input: PollInteractionInput, result: PollInteractionResult & { attempts: GeminiAttempt[] }, signal: AbortSignal): Promise<PollInteractionResult> {
    const finished = await finishInActivity(deps, input, () => reportSucceededOutcome({
      text: result.text, model: result.model || input.finishOnSuccess!.submittedModel, usage: result.usage, attempts: result.attempts,
      interactionId: input.interactionId, completedBy: input.trigger,
    }), signal, { interactionId: input.interactionId });
    return finished ? { ...result, finished: true } : result;
  }
}

/** The report's model chain (requested first) and how it waits. */
export function createReportSettings(deps: Pick<InteractionActivityDeps, 'modelChain' | 'reportPolling'>) {
  return async function reportSettings(input: { requested?: string }): Promise<{ models: string[]; polling: ReportPolling }> {
    return {
      models: [...new Set([...(input.requested ? [input.requested] : []), ...deps.modelChain])],
      polling: { ...DEFAULT_REPORT_POLLING, ...deps.reportPolling },
    };
  };
}
