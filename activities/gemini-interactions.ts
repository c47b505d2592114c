import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { guardForeignCall, type GuardedCall } from '../src/effects/guard';
import type { Logger } from '../src/observability/logger';
import { geminiStoreRetryMs } from '../workflows/activity-options';
import type { GeminiClient, InteractionState } from '../src/integrations/gemini/client';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import { ownerLabels, type GeminiCallOwner, type GeminiMetrics } from '../src/integrations/gemini/metrics';
import { activityFailure, countCallStart, countTokens, listAttempts, outcomeOf, reachedGeminiBefore, recordAttempt, type GeminiAttempt } from './gemini-generate';
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
}

export interface PollInteractionInput extends GeminiCallOwner {
  operationId: string;
  workflowId: string;
  interactionId: string;
  /** What woke the workflow for this poll; recorded as `completed_by` when the poll sees the end. */
  trigger: 'webhook' | 'poll';
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
}

const stepOf = (model: string) => `interaction:${model}`;

/**
 * Submits one background interaction per (operation, model), through the
 * side-effect guard (guardForeignCall, src/effects/guard.ts) and the
 * submission ledger (gemini_interactions):
 *
 * 1. with the step locked for the whole submission (a concurrent attempt of
 *    the same step, e.g. a retry after a timeout while the first still runs,
 *    waits, then reuses the first one's id), reserve the ledger row and count
 *    the submission, committed before anything is sent;
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
    const { attempt } = Context.current().info;
    const step = stepOf(input.model);
    const key = { operationId: input.operationId, step, workflowId: input.workflowId };
    const where = 'WHERE operation_id = $1 AND step = $2';
    const owner = ownerLabels(input);
    let startedMs = clock();
    let guarded: GuardedCall<{ interactionId: string }>;
    try {
      const retry = await reachedGeminiBefore(deps.pool, key, input, attempt);
      const spend = spendCap({ ...key, tenantId: input.tenantId, model: input.model, promptText: `${input.request.system ?? ''}${input.request.prompt}` });
      guarded = await guardForeignCall<{ interactionId: string }>(deps.pool, key, {
        admit: spend.admit,
        reserve: async (db) => {
          await db.query(
            `INSERT INTO gemini_interactions (operation_id, step, workflow_id, model) VALUES ($1, $2, $3, $4)
             ON CONFLICT (operation_id, step) DO NOTHING`,
            [input.operationId, step, input.workflowId, input.model],
          );
          const { rows } = await db.query<{ submit_attempts: number }>(
            `UPDATE gemini_interactions SET submit_attempts = submit_attempts + 1, submitted_at = now() ${where} RETURNING submit_attempts`,
            [input.operationId, step],
          );
          if (rows[0]!.submit_attempts > 1) {
            deps.logger?.warn(
              { ...logContext(input, attempt), previousSubmissions: rows[0]!.submit_attempts - 1 },
              'an earlier submission got no recorded id (lost answer or crash); submitting again may start a second paid interaction',
            );
          }
        },
        call: async () => {
          countCallStart(deps.geminiMetrics, input, retry);
          startedMs = clock();
          const state = await deps.gemini.submitInteraction({ model: input.model, ...input.request, signal });
          return { interactionId: state.id };
        },
        record: async (tx, { interactionId }) => {
          await tx.query(`UPDATE gemini_interactions SET interaction_id = $3, status = 'submitted' ${where}`, [input.operationId, step, interactionId]);
          await recordAttempt(tx, input, attempt, { model: input.model, outcome: 'succeeded', durationMs: clock() - startedMs });
        },
        failed: async (db, error) => {
          const failure = classifyGeminiError(error);
          // Gemini answered with an error: no interaction was started, so this
          // submission cannot have been paid for. A dropped or timed-out call
          // stays counted: it may have started one.
          if (failure.status !== undefined) await db.query(`UPDATE gemini_interactions SET submit_attempts = submit_attempts - 1 ${where}`, [input.operationId, step]);
          await recordAttempt(db, input, attempt, { model: input.model, outcome: outcomeOf[failure.type], durationMs: clock() - startedMs, error: failure.message });
          await spend.releaseIfUnpaid(db, error);
        },
      }, { storeRetryMs: geminiStoreRetryMs, logger: deps.logger });
    } catch (error) {
      throw activityFailure(error, { signal, model: input.model, owner, attempt, metrics: deps.geminiMetrics, logger: deps.logger, log: logContext(input, attempt), durationMs: clock() - startedMs });
    }
    const { interactionId } = guarded.result;
    if (guarded.kind === 'reused') {
      deps.geminiMetrics.callsAvoided.inc({ model: input.model, ...owner });
      deps.logger?.info({ ...logContext(input, attempt), interactionId }, 'interaction submission avoided: recorded id reused');
      return { interactionId, reused: true };
    }
    // Tokens and cost are counted when the report completes (pollInteraction): only then are they known.
    deps.geminiMetrics.calls.inc({ model: input.model, outcome: 'succeeded', ...owner });
    deps.logger?.info({ ...logContext(input, attempt), interactionId }, 'interaction submitted');
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
      throw ApplicationFailure.create({
        type: failure.type,
        message: `interaction ${input.interactionId}: ${failure.message}`,
        nonRetryable: failure.nonRetryable,
        nextRetryDelay: failure.nonRetryable ? undefined : failure.retryDelayMs,
      });
    }
    if (state.terminal) {
      const { rows } = await deps.pool.query<{ model: string }>(
        `UPDATE gemini_interactions
            SET status = $2, completed_by = $3, completed_at = now(), error = $4
          WHERE interaction_id = $1 AND completed_at IS NULL
          RETURNING model`,
        [input.interactionId, state.status === 'completed' ? 'completed' : 'failed', input.trigger, state.error ?? null],
      );
      // The poll that records the end counts the report's tokens and cost:
      // once, however many polls (or retried polls) see the completion.
      if (rows[0] && state.status === 'completed' && state.usage) {
        countTokens(deps.geminiMetrics, { model: rows[0].model, ...ownerLabels(input) }, state.usage);
      }
      if (rows[0]) await settleSpend(deps.pool, { operationId: input.operationId, step: stepOf(rows[0].model), actualMicroUsd: state.usage ? estimateCostMicros({ model: rows[0].model, ...state.usage }) : 0 });
      if (state.usage) {
        await deps.pool.query(
          `UPDATE gemini_attempts SET prompt_tokens = $3, output_tokens = $4
            WHERE operation_id = $1 AND model = $2 AND outcome = 'succeeded' AND prompt_tokens IS NULL`,
          [input.operationId, state.model, state.usage.promptTokens, state.usage.outputTokens],
        );
      }
      // Read here, where the connection already is, instead of by a round trip of the workflow's own.
      if (state.status === 'completed') return { ...state, attempts: await listAttempts(deps.pool, input.operationId) };
    }
    return state;
  });
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

function logContext(input: SubmitInteractionInput, attempt: number) {
  const { workflowExecution } = Context.current().info;
  return { correlationId: input.operationId, workflowId: input.workflowId, runId: workflowExecution?.runId, model: input.model, attempt };
}
