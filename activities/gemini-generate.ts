import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from '../src/observability/logger';
import { geminiBackoff, geminiStoreRetryMs } from '../workflows/activity-options';
import { FailureType } from '../workflows/failure-types';
import { GuardDatabaseError } from '../src/effects/errors';
import { guardForeignCall, type EffectKey, type GuardedCall } from '../src/effects/guard';
import type { GeminiClient, GenerateResponse } from '../src/integrations/gemini/client';
import { classifyGeminiError } from '../src/integrations/gemini/errors';
import { ownerLabels, reportCredentialsRejected, type GeminiCallOwner, type GeminiMetrics } from '../src/integrations/gemini/metrics';
import { budgetRefusal, spendCap } from '../src/spend/paid-call';
import { estimateCostMicros } from '../src/operations/pricing';
import { modelChainFor } from '../src/operations/model-chain';
import { whileHeartbeating } from './heartbeat';

export interface GenerateWithGeminiInput extends GeminiCallOwner {
  operationId: string;
  workflowId: string;
  model: string;
  /** The previous model of the chain when this call is a fallback. */
  fallbackFrom?: string;
  request: { prompt: string; system?: string; temperature?: number; maxOutputTokens?: number };
}

export interface GeminiAttempt {
  model: string;
  outcome: 'succeeded' | 'rate_limited' | 'unavailable' | 'rejected' | 'safety_blocked' | 'model_not_found';
  durationMs: number;
  promptTokens?: number;
  outputTokens?: number;
  error?: string;
}

/**
 * What generateWithGemini returns: the answer, and every recorded Gemini call
 * of the operation so far (the result's `attempts[]`), read by the activity
 * that already holds a connection instead of by a round trip of its own.
 */
export interface GenerateWithGeminiResult extends GenerateResponse {
  attempts: GeminiAttempt[];
}

/** The `details[0]` of a Gemini activity's ApplicationFailure. */
export interface GeminiFailureDetails {
  status: number | null;
  model: string;
  /** Every recorded call of the operation when this attempt failed; absent when PostgreSQL could not be read. */
  attempts?: GeminiAttempt[];
}

export const outcomeOf: Record<FailureType, GeminiAttempt['outcome']> = {
  [FailureType.GeminiRateLimited]: 'rate_limited',
  [FailureType.GeminiUnavailable]: 'unavailable',
  [FailureType.GeminiRejected]: 'rejected',
  // gemini_attempts has no outcome of its own for it yet; the error says 404.
  [FailureType.GeminiNotFound]: 'model_not_found',
  [FailureType.GeminiSafetyBlocked]: 'safety_blocked',
  [FailureType.GeminiCredentialsRejected]: 'unavailable',
  [FailureType.BudgetExceeded]: 'rejected',
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
 * One paid Gemini call per logical attempt, through the side-effect guard
 * (guardForeignCall, src/effects/guard.ts, where the crash windows that can
 * still cost a second call are listed).
 *
 * The stored response of (operation, `gemini:<model>`) is returned if present:
 * a retried activity, a replayed workflow or a second worker never pays again
 * once the response is committed. The response is stored with its attempt row
 * in one transaction; while PostgreSQL is away that store is retried for
 * geminiStoreRetryMs, so a database blip does not cost a second call.
 */
export function createGenerateWithGemini(deps: GeminiActivityDeps) {
  const clock = deps.clock ?? Date.now;
  return (input: GenerateWithGeminiInput): Promise<GenerateWithGeminiResult> => whileHeartbeating(async (signal) => {
    const { attempt } = Context.current().info;
    const key = { operationId: input.operationId, step: `gemini:${input.model}`, workflowId: input.workflowId };
    const owner = ownerLabels(input);
    const startedMs = clock();
    let guarded: GuardedCall<GenerateResponse>;
    try {
      const retry = await reachedGeminiBefore(deps.pool, key, input, attempt);
      const spend = spendCap({ ...key, tenantId: input.tenantId, model: input.model, promptText: `${input.request.system ?? ''}${input.request.prompt}`, maxOutputTokens: input.request.maxOutputTokens });
      guarded = await guardForeignCall<GenerateResponse>(deps.pool, key, {
        admit: spend.admit,
        call: () => {
          countCallStart(deps.geminiMetrics, input, retry);
          return deps.gemini.generate({ ...input.request, model: input.model, signal });
        },
        record: async (tx, response) => {
          await recordAttempt(tx, input, attempt, {
            model: input.model, outcome: 'succeeded', durationMs: clock() - startedMs,
            promptTokens: response.usage.promptTokens, outputTokens: response.usage.outputTokens,
          });
          await spend.settle(tx, response.usage);
        },
        failed: async (db, error) => {
          const failure = classifyGeminiError(error);
          await recordAttempt(db, input, attempt, { model: input.model, outcome: outcomeOf[failure.type], durationMs: clock() - startedMs, error: failure.message });
          await spend.releaseIfUnpaid(db, error);
        },
      }, { storeRetryMs: geminiStoreRetryMs, logger: deps.logger });
    } catch (error) {
      // The attempts so far travel with the failure, so that the workflow that
      // ends here needs no read of its own. Best effort: without them the
      // workflow reads them itself (listGeminiAttempts), retried until PostgreSQL is back.
      const attempts = await listAttempts(deps.pool, input.operationId).catch(() => undefined);
      throw activityFailure(error, { signal, model: input.model, owner, attempt, metrics: deps.geminiMetrics, logger: deps.logger, log: logContext(input, attempt), durationMs: clock() - startedMs, attempts });
    }
    const response = guarded.result;
    // Read after the answer is stored: if this read fails the retry reuses the stored answer and pays nothing.
    const withAttempts = async (): Promise<GenerateWithGeminiResult> => {
      try {
        return { ...response, attempts: await listAttempts(deps.pool, input.operationId) };
      } catch (error) {
        throw ApplicationFailure.create({ type: FailureType.DatabaseUnavailable, message: `listing the attempts: ${(error as Error).message}`, cause: error as Error });
      }
    };
    if (guarded.kind === 'reused') {
      deps.geminiMetrics.callsAvoided.inc({ model: input.model, ...owner });
      deps.logger?.info({ ...logContext(input, attempt), geminiResponseId: response.responseId }, 'gemini call avoided: stored response reused');
      return withAttempts();
    }
    // Paid for, even when a concurrent attempt's answer was stored first (raced): count this call's own tokens.
    const paid = guarded.kind === 'raced' ? guarded.ownAnswer : response;
    deps.geminiMetrics.calls.inc({ model: input.model, outcome: 'succeeded', ...owner });
    countTokens(deps.geminiMetrics, { model: input.model, ...owner }, paid.usage);
    deps.logger?.info(
      { ...logContext(input, attempt), outcome: 'succeeded', durationMs: clock() - startedMs, geminiResponseId: paid.responseId, promptTokens: paid.usage.promptTokens, outputTokens: paid.usage.outputTokens, ...(guarded.kind === 'raced' ? { storedResponseId: response.responseId } : {}) },
      guarded.kind === 'raced' ? 'gemini call succeeded, but a concurrent attempt stored its answer first; that one is returned' : 'gemini call succeeded',
    );
    return withAttempts();
  });
}

/**
 * Whether an earlier attempt of this step reached Gemini (its attempt row says
 * so), which makes this call a retry. An earlier attempt that failed before it
 * reached Gemini (PostgreSQL away) left no row and does not count.
 */
export async function reachedGeminiBefore(pool: pg.Pool, key: EffectKey, input: { operationId: string; model: string }, attempt: number): Promise<boolean> {
  if (attempt === 1) return false;
  try {
    const { rowCount } = await pool.query(
      'SELECT 1 FROM gemini_attempts WHERE operation_id = $1 AND model = $2 AND attempt < $3 LIMIT 1',
      [input.operationId, input.model, attempt],
    );
    return (rowCount ?? 0) > 0;
  } catch (error) {
    throw new GuardDatabaseError(key, 'before', { cause: error });
  }
}

/** Counted as the call leaves: a retry of this step, or the first call of a fallback model. */
export function countCallStart(metrics: GeminiMetrics, input: { model: string; fallbackFrom?: string } & GeminiCallOwner, retry: boolean): void {
  const { operation_type } = ownerLabels(input);
  if (retry) metrics.retries.inc({ model: input.model, operation_type });
  else if (input.fallbackFrom) metrics.fallbacks.inc({ from_model: input.fallbackFrom, to_model: input.model, operation_type });
}

/** Tokens and estimated cost of one paid answer. */
export function countTokens(
  metrics: GeminiMetrics,
  labels: { model: string; tenant: string; operation_type: string },
  usage: { promptTokens: number; outputTokens: number },
): void {
  metrics.tokens.inc({ ...labels, kind: 'prompt' }, usage.promptTokens);
  metrics.tokens.inc({ ...labels, kind: 'output' }, usage.outputTokens);
  metrics.costMicros.inc(labels, estimateCostMicros({ model: labels.model, ...usage }));
}

/**
 * The activity's edge: what the guard threw, as the failure the workflow
 * branches on. A cancelled attempt reports its cancellation; PostgreSQL trouble
 * is DatabaseUnavailable (retried); anything else came from the Gemini call and
 * is classified (a 400 or a safety block is final, whatever the bookkeeping did).
 */
export function activityFailure(
  error: unknown,
  context: {
    signal: AbortSignal; model: string; owner: { tenant: string; operation_type: string }; attempt: number;
    metrics: GeminiMetrics; logger?: Logger; log: object; durationMs: number;
    /** The operation's recorded calls, handed to the workflow in the failure's details. */
    attempts?: GeminiAttempt[];
  },
): unknown {
  if (context.signal.aborted) return context.signal.reason;
  const refused = budgetRefusal(error, context);
  if (refused) return refused;
  if (error instanceof GuardDatabaseError) {
    if (error.phase === 'storing') {
      // The call was made and paid for; its answer could not be stored, so the retry pays again.
      context.metrics.calls.inc({ model: context.model, outcome: 'succeeded', ...context.owner });
      context.logger?.error({ ...context.log, err: error.message }, 'gemini answered but the answer could not be stored; the retry calls again');
    }
    return ApplicationFailure.create({ type: FailureType.DatabaseUnavailable, message: error.message, cause: error });
  }
  const failure = classifyGeminiError(error);
  const outcome = outcomeOf[failure.type];
  if (failure.type === FailureType.GeminiCredentialsRejected) reportCredentialsRejected(context.metrics, failure, context);
  context.metrics.calls.inc({ model: context.model, outcome, ...context.owner });
  context.logger?.warn({ ...context.log, outcome, durationMs: context.durationMs, error: failure.message }, 'gemini call failed');
  return ApplicationFailure.create({
    type: failure.type,
    message: `${context.model}: ${failure.message}`,
    nonRetryable: failure.nonRetryable,
    // The server's delay for a 429; otherwise full-jitter backoff (see geminiBackoff).
    nextRetryDelay: failure.nonRetryable ? undefined : failure.retryDelayMs ?? jitteredBackoffMs(context.attempt),
    details: [{ status: failure.status ?? null, model: context.model, ...(context.attempts ? { attempts: context.attempts } : {}) } satisfies GeminiFailureDetails],
  });
}

/** Correlation fields of every log line about a call; never the prompt or the answer. */
function logContext(input: GenerateWithGeminiInput, attempt: number) {
  const { workflowExecution } = Context.current().info;
  return { correlationId: input.operationId, workflowId: input.workflowId, runId: workflowExecution?.runId, model: input.model, attempt };
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

export async function listAttempts(pool: Pick<pg.Pool, 'query'>, operationId: string): Promise<GeminiAttempt[]> {
  const { rows } = await pool.query<{
    model: string; outcome: GeminiAttempt['outcome']; duration_ms: number;
    prompt_tokens: number | null; output_tokens: number | null; error: string | null;
  }>(
    `SELECT model, outcome, duration_ms, prompt_tokens, output_tokens, error
       FROM gemini_attempts WHERE operation_id = $1 ORDER BY created_at, attempt`,
    [operationId],
  );
  return rows.map((row) => ({
    model: row.model,
    outcome: row.outcome,
    durationMs: row.duration_ms,
    ...(row.prompt_tokens !== null ? { promptTokens: row.prompt_tokens } : {}),
    ...(row.output_tokens !== null ? { outputTokens: row.output_tokens } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
  }));
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

/** Full jitter: a uniform delay between 0 and the exponential cap of this attempt. */
export function jitteredBackoffMs(attempt: number): number {
  const cap = Math.min(geminiBackoff.maxMs, geminiBackoff.initialMs * geminiBackoff.coefficient ** (attempt - 1));
  return Math.max(100, Math.round(Math.random() * cap));
}
