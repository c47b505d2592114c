/**
 * The attempt records: the one module that issues SQL on gemini_attempts (one
 * row per Gemini call, whatever its outcome: the `attempts[]` of a result and
 * the audit of what was paid for).
 *
 * It lives with the Gemini integration, not in src/effects/guard.ts: the
 * guard is generic over any foreign call and knows only the `effects` table;
 * these rows speak Gemini (model, tokens, outcomes from the Gemini failure
 * table). The Gemini activities call these functions from the guard's hooks,
 * on the guard's transaction, so a record costs no transaction of its own.
 */
import type { Queryable } from '../../db/pool';
import { FailureType } from '../../../workflows/failure-types';

export interface GeminiAttempt {
  model: string;
  outcome: 'succeeded' | 'rate_limited' | 'unavailable' | 'rejected' | 'safety_blocked' | 'model_not_found';
  durationMs: number;
  promptTokens?: number;
  outputTokens?: number;
  error?: string;
}

/** Which call a record belongs to: one activity attempt of one model of one operation. */
export interface AttemptKey {
  operationId: string;
  workflowId: string;
  model: string;
  /** The activity attempt (Temporal's, from 1). */
  attempt: number;
}

/** The recorded outcome of a call that failed with each failure type. */
export const attemptOutcomeOf: Record<FailureType, GeminiAttempt['outcome']> = {
  [FailureType.GeminiRateLimited]: 'rate_limited',
  [FailureType.GeminiUnavailable]: 'unavailable',
  [FailureType.GeminiRejected]: 'rejected',
  [FailureType.GeminiNotFound]: 'model_not_found',
  [FailureType.GeminiSafetyBlocked]: 'safety_blocked',
  [FailureType.GeminiCredentialsRejected]: 'unavailable',
  [FailureType.BudgetExceeded]: 'rejected',
  [FailureType.DatabaseUnavailable]: 'unavailable',
  [FailureType.InvalidState]: 'rejected',
};

const COLUMNS = 'model, outcome, duration_ms, prompt_tokens, output_tokens, error';

interface AttemptRow {
  model: string;
  outcome: GeminiAttempt['outcome'];
  duration_ms: number;
  prompt_tokens: number | null;
  output_tokens: number | null;
  error: string | null;
}

/**
 * Whether an earlier activity attempt of this model reached Gemini (its
 * attempt row says so), which makes this call a retry. An attempt that failed
 * before it reached Gemini (PostgreSQL away) left no row and does not count.
 * The first attempt asks nothing.
 */
export async function earlierAttemptReachedGemini(db: Queryable, key: AttemptKey): Promise<boolean> {
  if (key.attempt === 1) return false;
  const { rowCount } = await db.query({
    name: 'onceflow-attempt-earlier',
    text: 'SELECT 1 FROM gemini_attempts WHERE operation_id = $1 AND model = $2 AND attempt < $3 LIMIT 1',
    values: [key.operationId, key.model, key.attempt],
  });
  return (rowCount ?? 0) > 0;
}

/**
 * Records one call and returns every recorded call of the operation, oldest
 * first, in one statement: the insert's own row comes from RETURNING (the
 * statement's snapshot cannot see it), the others from the table. A retried
 * write of the same attempt inserts nothing and finds its row in the table.
 */
export async function recordAttempt(db: Queryable, key: AttemptKey, record: Omit<GeminiAttempt, 'model'>): Promise<GeminiAttempt[]> {
  const { rows } = await db.query<AttemptRow>({
    name: 'onceflow-attempt-record',
    text: `WITH recorded AS (
       INSERT INTO gemini_attempts (operation_id, model, attempt, workflow_id, outcome, duration_ms, prompt_tokens, output_tokens, error)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING
       RETURNING ${COLUMNS}, created_at, attempt)
     SELECT ${COLUMNS} FROM (
       SELECT * FROM recorded
       UNION ALL
       SELECT ${COLUMNS}, created_at, attempt FROM gemini_attempts WHERE operation_id = $1
     ) every_attempt ORDER BY created_at, attempt`,
    values: [key.operationId, key.model, key.attempt, key.workflowId, record.outcome, record.durationMs,
      record.promptTokens ?? null, record.outputTokens ?? null, record.error ?? null],
  });
  return rows.map(toAttempt);
}

/** Every recorded call of an operation, oldest first: the result's `attempts[]`. */
export async function listAttempts(db: Queryable, operationId: string): Promise<GeminiAttempt[]> {
  const { rows } = await db.query<AttemptRow>(
    `SELECT ${COLUMNS} FROM gemini_attempts WHERE operation_id = $1 ORDER BY created_at, attempt`,
    [operationId],
  );
  return rows.map(toAttempt);
}

/**
 * The token counts of a background interaction's successful submission, known
 * only once the interaction completed; written once (a later poll finds them set).
 */
export async function recordInteractionTokens(db: Queryable, input: { operationId: string; model: string; usage: { promptTokens: number; outputTokens: number } }): Promise<void> {
  await db.query(
    `UPDATE gemini_attempts SET prompt_tokens = $3, output_tokens = $4
      WHERE operation_id = $1 AND model = $2 AND outcome = 'succeeded' AND prompt_tokens IS NULL`,
    [input.operationId, input.model, input.usage.promptTokens, input.usage.outputTokens],
  );
}

function toAttempt(row: AttemptRow): GeminiAttempt {
  return {
    model: row.model,
    outcome: row.outcome,
    durationMs: row.duration_ms,
    ...(row.prompt_tokens !== null ? { promptTokens: row.prompt_tokens } : {}),
    ...(row.output_tokens !== null ? { outputTokens: row.output_tokens } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
  };
}
