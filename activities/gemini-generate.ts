import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import { geminiStoreRetryMs } from '../workflows/activity-options';
import { FailureType } from '../workflows/failure-types';
import { guardForeignCall, type GuardedCall } from '../src/effects/guard';
import { earlierAttemptReachedGemini, listAttempts, recordAttempt, type AttemptKey, type GeminiAttempt } from '../src/integrations/gemini/attempts';
import { callReport } from '../src/integrations/gemini/call-report';
import type { GeminiClient, GenerateResponse } from '../src/integrations/gemini/client';
import { toGeminiCallFailure } from '../src/integrations/gemini/errors';
import type { GeminiCallOwner, GeminiMetrics } from '../src/integrations/gemini/metrics';
import { spendCap } from '../src/spend/paid-call';
import { modelChainFor } from '../src/operations/model-chain';
import { succeededOutcome } from '../workflows/operation-outcome';
import { finishInActivity, type FinishingDeps } from './finish-in-activity';
import { whileHeartbeating } from './heartbeat';

// The workflows read these types from here (workflows/ imports types only).
export type { GeminiAttempt } from '../src/integrations/gemini/attempts';
export type { GeminiFailureDetails } from '../src/integrations/gemini/errors';

export interface GenerateWithGeminiInput extends GeminiCallOwner {
  operationId: string;
  workflowId: string;
  model: string;
  /** The previous model of the chain when this call is a fallback. */
  fallbackFrom?: string;
  request: { prompt: string; system?: string; temperature?: number; maxOutputTokens?: number };
  /**
   * Set by runs that let a success finish here (finishSucceeded); runs
   * recorded before it did not send it, and finish in their workflow.
   */
  finishOnSuccess?: { idempotencyKey: string };
}

/**
 * What generateWithGemini returns: the answer, and every recorded Gemini call
 * of the operation so far (the result's `attempts[]`), read in the transaction
 * that stores the answer instead of by a round trip of its own.
 */
export interface GenerateWithGeminiResult extends GenerateResponse {
  attempts: GeminiAttempt[];
  /** True when the operation was finished (result, bill, event) by this activity; the workflow then ends without finishing again. */
  finished?: true;
}

export interface GeminiActivityDeps {
  pool: pg.Pool;
  gemini: GeminiClient;
  geminiMetrics: GeminiMetrics;
  logger?: Logger;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
  /** The finishing phase (activities/complete-operation.ts), run here for a success when the input asks (finishOnSuccess). */
  completeOperation?: FinishingDeps['completeOperation'];
}

/**
 * One paid Gemini call per logical attempt, through the side-effect guard
 * (guardForeignCall, src/effects/guard.ts, where the crash windows that can
 * still cost a second call are listed). Before the call: the stored answer,
 * the retry check (from the second attempt on) and the spend standing, each
 * one read, plus a reservation transaction for a capped tenant only. After
 * it, one transaction: the answer, its attempt row with the attempts so far,
 * and the actual cost when something was reserved.
 *
 * The stored response of (operation, `gemini:<model>`) is returned if present:
 * a retried activity, a replayed workflow or a second worker never pays again
 * once the response is committed. While PostgreSQL is away that store is
 * retried for geminiStoreRetryMs, so a database blip does not cost a second call.
 * The call gets the attempt's cancellation signal (whileHeartbeating), so an
 * attempt Temporal cancelled or timed out stops waiting for its answer.
 */
export function createGenerateWithGemini(deps: GeminiActivityDeps) {
  const clock = deps.clock ?? Date.now;
  return (input: GenerateWithGeminiInput): Promise<GenerateWithGeminiResult> => whileHeartbeating(async (signal) => {
    const { attempt, workflowExecution } = Context.current().info;
    const key = { operationId: input.operationId, step: `gemini:${input.model}`, workflowId: input.workflowId };
    const attemptKey: AttemptKey = { ...key, model: input.model, attempt };
    const report = callReport({
      ...input, metrics: deps.geminiMetrics, logger: deps.logger,
      log: { correlationId: input.operationId, workflowId: input.workflowId, runId: workflowExecution?.runId, model: input.model, attempt },
    });
    const spend = spendCap({ ...key, tenantId: input.tenantId, model: input.model, promptText: `${input.request.system ?? ''}${input.request.prompt}`, maxOutputTokens: input.request.maxOutputTokens });
    const startedMs = clock();
    let retry = false;
    let attemptsAtFailure: GeminiAttempt[] | undefined;
    let guarded: GuardedCall<GenerateResponse, GeminiAttempt[]>;
    try {
      guarded = await guardForeignCall<GenerateResponse, GeminiAttempt[]>(deps.pool, key, {
        // No transaction unless the tenant is capped: a read of the stored
        // answer and one of the spend standing (spendCap.claim).
        claim: async (scope) => {
          retry = await earlierAttemptReachedGemini(scope.db, attemptKey);
          await spend.claim(scope);
        },
        call: () => {
          report.leaving(retry);
          return deps.gemini.generate({ ...input.request, model: input.model, signal });
        },
        record: async (tx, response) => {
          const attempts = await recordAttempt(tx, attemptKey, {
            outcome: 'succeeded', durationMs: clock() - startedMs, promptTokens: response.usage.promptTokens, outputTokens: response.usage.outputTokens,
          });
          await spend.settle(tx, response.usage);
          return attempts;
        },
        failed: async (db, error) => {
          const failure = toGeminiCallFailure(error, { model: input.model, attempt });
          if (failure.kind !== 'gemini') return;
          attemptsAtFailure = await recordAttempt(db, attemptKey, { outcome: failure.outcome, durationMs: clock() - startedMs, error: failure.classified.message });
          await spend.releaseIfUnpaid(db, error);
        },
      }, { storeRetryMs: geminiStoreRetryMs, logger: deps.logger });
    } catch (error) {
      // The attempts so far travel with the failure, so that the workflow that
      // ends here needs no read of its own. Best effort: without them the
      // workflow reads them itself (listGeminiAttempts), retried until PostgreSQL is back.
      const attempts = attemptsAtFailure ?? await listAttempts(deps.pool, input.operationId).catch(() => undefined);
      const failure = toGeminiCallFailure(error, { signal, model: input.model, attempt, attempts });
      report.failed(failure, clock() - startedMs);
      throw failure.failure;
    }
    const response = guarded.result;
    if (guarded.kind === 'called') {
      report.paid({ durationMs: clock() - startedMs, geminiResponseId: response.responseId, promptTokens: response.usage.promptTokens, outputTokens: response.usage.outputTokens }, 'gemini call succeeded');
      report.tokens(response.usage);
      return finishSucceeded(input, { ...response, attempts: guarded.recorded }, signal);
    }
    if (guarded.kind === 'reused') {
      report.avoided({ geminiResponseId: response.responseId }, 'gemini call avoided: stored response reused');
    } else {
      // Paid for, though a concurrent attempt's answer was stored first: count this call's own tokens.
      const own = guarded.ownAnswer;
      report.paid(
        { durationMs: clock() - startedMs, geminiResponseId: own.responseId, promptTokens: own.usage.promptTokens, outputTokens: own.usage.outputTokens, storedResponseId: response.responseId },
        'gemini call succeeded, but a concurrent attempt stored its answer first; that one is returned',
      );
      report.tokens(own.usage);
    }
    // Read after the answer is stored: if this read fails the retry reuses the stored answer and pays nothing.
    let attempts: GeminiAttempt[];
    try {
      attempts = await listAttempts(deps.pool, input.operationId);
    } catch (error) {
      throw ApplicationFailure.create({ type: FailureType.DatabaseUnavailable, message: `listing the attempts: ${(error as Error).message}`, cause: error as Error });
    }
    return finishSucceeded(input, { ...response, attempts }, signal);
  });

  /**
   * A success is finished here, after its answer is stored (finishInActivity):
   * the local activity it saves cost a workflow activation and a dispatch per
   * operation, about a third of the worker's time on a success. A retry after
   * a crash past the finish's COMMIT reuses the stored answer (no second
   * call) and the stored finish. Finishing failed or skipped, the answer
   * still returns: failing this attempt would cost a retry and, after the
   * model's last attempt, a fallback to the next model, a second paid call.
   */
  async function finishSucceeded(input: GenerateWithGeminiInput, result: GenerateWithGeminiResult, signal: AbortSignal): Promise<GenerateWithGeminiResult> {
    const finished = await finishInActivity(deps, input, () => succeededOutcome(result), signal);
    return finished ? { ...result, finished: true } : result;
  }
}

/**
 * Every recorded attempt of an operation, oldest first: the result's
 * `attempts[]`. The Gemini activities return it themselves; workflows call
 * this only when a failure came without it (and runs recorded before it did).
 */
export function createListGeminiAttempts(deps: { pool: pg.Pool }) {
  return async function listGeminiAttempts(input: { operationId: string }): Promise<GeminiAttempt[]> {
    return listAttempts(deps.pool, input.operationId);
  };
}

/**
 * The model chain as an activity: runs started before the chain travelled in
 * the workflow input (src/operations/starter.ts) still call it when they replay.
 */
export function createResolveModelChain(deps: { modelChain: readonly string[] }) {
  return async function resolveModelChain(input: { requested?: string }): Promise<string[]> {
    return modelChainFor(input.requested, deps.modelChain);
  };
}
