import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import { geminiBackoff } from '../workflows/activity-options';
import { FailureType } from '../workflows/failure-types';
import { findEffect, runEffect } from '../src/effects/guard';
import type { GeminiClient, GenerateResponse } from '../src/integrations/gemini/client';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import type { GeminiMetrics } from '../src/integrations/gemini/metrics';
import { estimateCostMicros } from '../src/operations/pricing';
import { whileHeartbeating } from './heartbeat';

export interface GenerateWithGeminiInput {
  operationId: string;
  workflowId: string;
  model: string;
  /** The previous model of the chain when this call is a fallback. */
  fallbackFrom?: string;
  request: { prompt: string; system?: string; temperature?: number; maxOutputTokens?: number };
}

export interface GeminiAttempt {
  model: string;
  outcome: 'succeeded' | 'rate_limited' | 'unavailable' | 'rejected' | 'safety_blocked';
  durationMs: number;
  promptTokens?: number;
  outputTokens?: number;
  error?: string;
}

export const outcomeOf: Record<FailureType, GeminiAttempt['outcome']> = {
  [FailureType.GeminiRateLimited]: 'rate_limited',
  [FailureType.GeminiUnavailable]: 'unavailable',
  [FailureType.GeminiRejected]: 'rejected',
  [FailureType.GeminiSafetyBlocked]: 'safety_blocked',
  [FailureType.DatabaseUnavailable]: 'unavailable',
  [FailureType.InvalidState]: 'rejected',
};

export interface GeminiActivityDeps {
  pool: pg.Pool;
  gemini: GeminiClient;
  geminiMetrics: GeminiMetrics;
  logger?: Logger;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
}

/**
 * One paid Gemini call per logical attempt, guarded by PostgreSQL.
 *
 * Before calling, the stored response of (operation, `gemini:<model>`) is
 * looked up and returned if present: a retried activity, a replayed workflow
 * or a second worker never pays again once the response is committed.
 */
export function createGenerateWithGemini(deps: GeminiActivityDeps) {
  const clock = deps.clock ?? Date.now;
  return (input: GenerateWithGeminiInput): Promise<GenerateResponse> => whileHeartbeating(async (signal) => {
    const { attempt } = Context.current().info;
    const key = { operationId: input.operationId, step: `gemini:${input.model}`, workflowId: input.workflowId };
    const stored = await findEffect<GenerateResponse>(deps.pool, key);
    if (stored) {
      deps.geminiMetrics.callsAvoided.inc({ model: input.model });
      deps.logger?.info({ ...logContext(input, attempt), geminiResponseId: stored.responseId }, 'gemini call avoided: stored response reused');
      return stored;
    }
    if (attempt > 1) deps.geminiMetrics.retries.inc({ model: input.model });
    else if (input.fallbackFrom) deps.geminiMetrics.fallbacks.inc({ from_model: input.fallbackFrom, to_model: input.model });

    const startedMs = clock();
    let response: GenerateResponse;
    try {
      response = await deps.gemini.generate({ ...input.request, model: input.model, signal });
    } catch (error) {
      const failure = classifyGeminiError(error);
      const outcome = outcomeOf[failure.type];
      deps.geminiMetrics.calls.inc({ model: input.model, outcome });
      deps.logger?.warn({ ...logContext(input, attempt), outcome, durationMs: clock() - startedMs, error: failure.message }, 'gemini call failed');
      await bestEffort(deps.logger, logContext(input, attempt), 'record the failed attempt', () =>
        recordAttempt(deps.pool, input, attempt, { model: input.model, outcome, durationMs: clock() - startedMs, error: failure.message }));
      // Temporal cancelled this attempt or timed it out: report the cancellation, not a Gemini failure.
      if (signal.aborted) throw signal.reason;
      throw ApplicationFailure.create({
        type: failure.type,
        message: `${input.model}: ${failure.message}`,
        nonRetryable: failure.nonRetryable,
        // The server's delay for a 429; otherwise full-jitter backoff (see geminiBackoff).
        nextRetryDelay: failure.nonRetryable ? undefined : failure.retryDelayMs ?? jitteredBackoffMs(attempt),
        details: [{ status: failure.status ?? null, model: input.model }],
      });
    }
    // CRASH WINDOW: Gemini has answered, and billed us, but nothing is
    // committed yet. If the worker dies before the COMMIT below, the retried
    // attempt calls Gemini again. generateContent takes no idempotency key and
    // offers no lookup of an earlier answer, so no request we could send closes
    // this window; it lasts one short INSERT transaction.
    const attemptRecord: GeminiAttempt = {
      model: input.model, outcome: 'succeeded', durationMs: clock() - startedMs,
      promptTokens: response.usage.promptTokens, outputTokens: response.usage.outputTokens,
    };
    const { result, replayed } = await runEffect(deps.pool, key, async (tx) => {
      await recordAttempt(tx, input, attempt, attemptRecord);
      return response;
    });
    deps.geminiMetrics.calls.inc({ model: input.model, outcome: 'succeeded' });
    deps.logger?.info(
      { ...logContext(input, attempt), outcome: 'succeeded', durationMs: attemptRecord.durationMs, geminiResponseId: response.responseId, promptTokens: response.usage.promptTokens, outputTokens: response.usage.outputTokens },
      'gemini call succeeded',
    );
    if (!replayed) {
      deps.geminiMetrics.tokens.inc({ model: input.model, kind: 'prompt' }, response.usage.promptTokens);
      deps.geminiMetrics.tokens.inc({ model: input.model, kind: 'output' }, response.usage.outputTokens);
      deps.geminiMetrics.costMicros.inc({ model: input.model }, estimateCostMicros({ model: input.model, ...response.usage }));
    }
    return result;
  });
}

/** Correlation fields of every log line about a call; never the prompt or the answer. */
function logContext(input: GenerateWithGeminiInput, attempt: number) {
  const { workflowExecution } = Context.current().info;
  return { correlationId: input.operationId, workflowId: input.workflowId, runId: workflowExecution?.runId, model: input.model, attempt };
}

/**
 * A bookkeeping write after a failed Gemini call (the attempt row, a ledger
 * counter). Its own failure is logged and swallowed: it must never replace the
 * call's classified failure, or Temporal would retry a 400 or a safety block
 * (already paid for) as an ordinary error.
 */
export async function bestEffort(logger: Logger | undefined, context: object, what: string, write: () => Promise<unknown>): Promise<void> {
  try {
    await write();
  } catch (error) {
    logger?.warn({ ...context, err: (error as Error).message }, `could not ${what}; the call's outcome stands`);
  }
}

/** One row of gemini_attempts; a retried write of the same attempt is a no-op. */
export async function recordAttempt(db: Pick<pg.Pool, 'query'>, input: Pick<GenerateWithGeminiInput, 'operationId' | 'workflowId'>, attempt: number, record: GeminiAttempt): Promise<void> {
  await db.query(
    `INSERT INTO gemini_attempts (operation_id, model, attempt, workflow_id, outcome, duration_ms, prompt_tokens, output_tokens, error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
    [input.operationId, record.model, attempt, input.workflowId, record.outcome, record.durationMs,
      record.promptTokens ?? null, record.outputTokens ?? null, record.error ?? null],
  );
}

/** Every recorded attempt of an operation, oldest first: the result's `attempts[]`. */
export function createListGeminiAttempts(deps: { pool: pg.Pool }) {
  return async function listGeminiAttempts(input: { operationId: string }): Promise<GeminiAttempt[]> {
    const { rows } = await deps.pool.query<{
      model: string; outcome: GeminiAttempt['outcome']; duration_ms: number;
      prompt_tokens: number | null; output_tokens: number | null; error: string | null;
    }>(
      `SELECT model, outcome, duration_ms, prompt_tokens, output_tokens, error
         FROM gemini_attempts WHERE operation_id = $1 ORDER BY created_at, attempt`,
      [input.operationId],
    );
    return rows.map((row) => ({
      model: row.model,
      outcome: row.outcome,
      durationMs: row.duration_ms,
      ...(row.prompt_tokens !== null ? { promptTokens: row.prompt_tokens } : {}),
      ...(row.output_tokens !== null ? { outputTokens: row.output_tokens } : {}),
      ...(row.error !== null ? { error: row.error } : {}),
    }));
  };
}

/** The model chain for a request: the requested model first, then the configured fallbacks. */
export function createResolveModelChain(deps: { modelChain: readonly string[] }) {
  return async function resolveModelChain(input: { requested?: string }): Promise<string[]> {
    return [...new Set([...(input.requested ? [input.requested] : []), ...deps.modelChain])];
  };
}

/** Full jitter: a uniform delay between 0 and the exponential cap of this attempt. */
export function jitteredBackoffMs(attempt: number): number {
  const cap = Math.min(geminiBackoff.maxMs, geminiBackoff.initialMs * geminiBackoff.coefficient ** (attempt - 1));
  return Math.max(100, Math.round(Math.random() * cap));
}
