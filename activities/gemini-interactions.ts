import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import { FailureType } from '../workflows/failure-types';
import type { GeminiClient, InteractionState } from '../src/integrations/gemini/client';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import type { GeminiMetrics } from '../src/integrations/gemini/metrics';
import { bestEffort, jitteredBackoffMs, outcomeOf, recordAttempt } from './gemini-generate';
import { whileHeartbeating } from './heartbeat';

export interface SubmitInteractionInput {
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

export interface PollInteractionInput {
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
 * submission ledger (gemini_interactions):
 *
 * 1. reserve the row (committed before anything is sent);
 * 2. under a session advisory lock on the step (a concurrent attempt of the
 *    same step, e.g. a retry after a timeout while the first still runs, waits
 *    here and then finds the first one's id), return a recorded id if there is one;
 * 3. count the submission (committed), call Gemini, record the id right after.
 *
 * CRASH WINDOW: between Gemini accepting the create call and the UPDATE that
 * records its id. A worker dying there (or an answer lost on the wire) leaves
 * a row with submit_attempts > 0 and no id; the retry cannot tell whether
 * Gemini started an interaction, and submits again. interactions.create takes
 * no idempotency key and there is no lookup by our own label, so nothing we
 * could send closes this window; it lasts one HTTP answer plus one UPDATE, and
 * the ledger row shows when it happened (submit_attempts > 1).
 */
export function createSubmitInteraction(deps: InteractionActivityDeps) {
  const clock = deps.clock ?? Date.now;
  return (input: SubmitInteractionInput): Promise<SubmitInteractionResult> => whileHeartbeating(async (signal) => {
    const { attempt } = Context.current().info;
    const step = stepOf(input.model);
    const client = await deps.pool.connect();
    let broken = false;
    try {
      await client.query(
        `INSERT INTO gemini_interactions (operation_id, step, workflow_id, model) VALUES ($1, $2, $3, $4)
         ON CONFLICT (operation_id, step) DO NOTHING`,
        [input.operationId, step, input.workflowId, input.model],
      );
      // Session-level, so it is released when this connection closes: a worker
      // that dies holding it frees it with its connection.
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 1))', [`${input.operationId}:${step}`]);
      try {
        const { rows } = await client.query<{ interaction_id: string | null; submit_attempts: number }>(
          'SELECT interaction_id, submit_attempts FROM gemini_interactions WHERE operation_id = $1 AND step = $2',
          [input.operationId, step],
        );
        const row = rows[0]!;
        if (row.interaction_id) {
          deps.geminiMetrics.callsAvoided.inc({ model: input.model });
          deps.logger?.info({ ...logContext(input, attempt), interactionId: row.interaction_id }, 'interaction submission avoided: recorded id reused');
          return { interactionId: row.interaction_id, reused: true };
        }
        if (row.submit_attempts > 0) {
          deps.logger?.warn(
            { ...logContext(input, attempt), previousSubmissions: row.submit_attempts },
            'an earlier submission got no recorded id (lost answer or crash); submitting again may start a second paid interaction',
          );
        }
        if (attempt > 1) deps.geminiMetrics.retries.inc({ model: input.model });
        else if (input.fallbackFrom) deps.geminiMetrics.fallbacks.inc({ from_model: input.fallbackFrom, to_model: input.model });
        await client.query(
          'UPDATE gemini_interactions SET submit_attempts = submit_attempts + 1, submitted_at = now() WHERE operation_id = $1 AND step = $2',
          [input.operationId, step],
        );

        const startedMs = clock();
        let state: InteractionState;
        try {
          state = await deps.gemini.submitInteraction({ model: input.model, ...input.request, signal });
        } catch (error) {
          const failure = classifyGeminiError(error);
          const outcome = outcomeOf[failure.type];
          if (failure.status !== undefined) {
            // Gemini answered with an error: no interaction was started, so this
            // submission cannot have been paid for. A dropped or timed-out call
            // stays counted: it may have started one.
            await bestEffort(deps.logger, logContext(input, attempt), 'take back the submission count', () => client.query(
              'UPDATE gemini_interactions SET submit_attempts = submit_attempts - 1 WHERE operation_id = $1 AND step = $2',
              [input.operationId, step],
            ));
          }
          deps.geminiMetrics.calls.inc({ model: input.model, outcome });
          await bestEffort(deps.logger, logContext(input, attempt), 'record the failed attempt', () =>
            recordAttempt(client, input, attempt, { model: input.model, outcome, durationMs: clock() - startedMs, error: failure.message }));
          deps.logger?.warn({ ...logContext(input, attempt), outcome, error: failure.message }, 'interaction submission failed');
          // Temporal cancelled this attempt or timed it out: report the cancellation, not a Gemini failure.
          if (signal.aborted) throw signal.reason;
          throw ApplicationFailure.create({
            type: failure.type,
            message: `${input.model}: ${failure.message}`,
            nonRetryable: failure.nonRetryable,
            nextRetryDelay: failure.nonRetryable ? undefined : failure.retryDelayMs ?? jitteredBackoffMs(attempt),
            details: [{ status: failure.status ?? null, model: input.model }],
          });
        }
        // The crash window described above ends with this UPDATE.
        await client.query(
          `UPDATE gemini_interactions SET interaction_id = $3, status = 'submitted' WHERE operation_id = $1 AND step = $2`,
          [input.operationId, step, state.id],
        );
        deps.geminiMetrics.calls.inc({ model: input.model, outcome: 'succeeded' });
        await recordAttempt(client, input, attempt, { model: input.model, outcome: 'succeeded', durationMs: clock() - startedMs });
        deps.logger?.info({ ...logContext(input, attempt), interactionId: state.id }, 'interaction submitted');
        return { interactionId: state.id, reused: false };
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 1))', [`${input.operationId}:${step}`]).catch(() => {
          broken = true; // the connection is gone; so is its lock
        });
      }
    } catch (error) {
      if (error instanceof ApplicationFailure || error === signal.reason) throw error;
      throw ApplicationFailure.create({ type: FailureType.DatabaseUnavailable, message: `submission ledger: ${(error as Error).message}`, cause: error as Error });
    } finally {
      client.release(broken);
    }
  });
}

/**
 * One free read of an interaction. Short by design: the workflow waits
 * between polls on Temporal timers, so a report that takes an hour holds no
 * worker slot. When the read shows the end, the ledger row records it once.
 */
export function createPollInteraction(deps: InteractionActivityDeps) {
  return (input: PollInteractionInput): Promise<InteractionState> => whileHeartbeating(async (signal) => {
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
      await deps.pool.query(
        `UPDATE gemini_interactions
            SET status = $2, completed_by = $3, completed_at = now(), error = $4
          WHERE interaction_id = $1 AND completed_at IS NULL`,
        [input.interactionId, state.status === 'completed' ? 'completed' : 'failed', input.trigger, state.error ?? null],
      );
      if (state.usage) {
        await deps.pool.query(
          `UPDATE gemini_attempts SET prompt_tokens = $3, output_tokens = $4
            WHERE operation_id = $1 AND model = $2 AND outcome = 'succeeded' AND prompt_tokens IS NULL`,
          [input.operationId, state.model, state.usage.promptTokens, state.usage.outputTokens],
        );
      }
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
