/**
 * Where a running operation stands, read from PostgreSQL alone (no Temporal
 * round trip on a 409): the Gemini attempts recorded so far and, for
 * background types, the interaction's state.
 *
 * The tables belong to the Gemini integration; this is a read of them, kept
 * to one statement, until that module exposes its own reader.
 */
import type { Queryable } from '../db/pool';
import type { OperationState } from './repository';

export interface OperationProgress {
  /** starting (workflow start not confirmed), calling-gemini, backing-off (a retryable attempt failed), waiting-for-interaction, finishing. */
  step: 'starting' | 'calling-gemini' | 'backing-off' | 'waiting-for-interaction' | 'finishing';
  /** The model of the call in flight or last made; null before the first call. */
  model: string | null;
  /** The number of the call in flight (or next) for that model, 1-based. */
  attempt: number;
  /** Gemini calls recorded so far, every model. */
  attempts: number;
  /** When the operation was first requested (RFC 3339). */
  startedAt: string;
  /** Background types: the interaction's state (reserved, submitted, completed, failed); null otherwise. */
  interaction: { state: string } | null;
}

export interface ProgressReader {
  read(record: OperationState): Promise<OperationProgress>;
}

/** Attempt outcomes after which the activity retries the same model. */
const RETRYABLE_OUTCOMES = new Set(['rate_limited', 'unavailable']);

export class PostgresProgressReader implements ProgressReader {
  constructor(private readonly db: Queryable) {}

  async read(record: OperationState): Promise<OperationProgress> {
    const startedAt = record.createdAt.toISOString();
    if (record.status === 'reserved') return { step: 'starting', model: null, attempt: 1, attempts: 0, startedAt, interaction: null };
    const { rows } = await this.db.query<{
      attempts: number; model: string | null; attempt: number | null; outcome: string | null; interaction_state: string | null;
    }>({
      name: 'onceflow-progress',
      text: `SELECT (SELECT count(*)::int FROM gemini_attempts WHERE operation_id = $1) AS attempts,
                    last.model, last.attempt, last.outcome,
                    (SELECT status FROM gemini_interactions WHERE operation_id = $1 ORDER BY created_at DESC LIMIT 1) AS interaction_state
               FROM (SELECT 1) one
               LEFT JOIN LATERAL (SELECT model, attempt, outcome FROM gemini_attempts WHERE operation_id = $1
                                   ORDER BY created_at DESC, attempt DESC LIMIT 1) last ON true`,
      values: [record.operationId],
    });
    const row = rows[0]!;
    const interaction = row.interaction_state ? { state: row.interaction_state } : null;
    const backingOff = row.outcome !== null && RETRYABLE_OUTCOMES.has(row.outcome);
    const step: OperationProgress['step'] =
      interaction && interaction.state === 'submitted' ? 'waiting-for-interaction'
        : row.outcome === 'succeeded' ? 'finishing'
          : backingOff ? 'backing-off'
            : 'calling-gemini';
    return {
      step,
      model: row.model,
      attempt: row.attempt === null ? 1 : backingOff ? row.attempt + 1 : row.attempt,
      attempts: row.attempts,
      startedAt,
      interaction,
    };
  }
}

/**
 * Retry-After for a 409, from the progress, between 1 and 60 s: a call in
 * flight or a start is seconds away; a retry after a 429 or 5xx waits for its
 * backoff (doubling per attempt, as the activity's retry policy does); a
 * background interaction takes minutes, so polling it every second is waste.
 */
export function retryAfterSeconds(progress: OperationProgress): number {
  const seconds =
    progress.step === 'backing-off' ? 2 ** Math.max(0, progress.attempt - 1)
      : progress.step === 'waiting-for-interaction' ? 10
        : progress.step === 'calling-gemini' ? 2
          : 1;
  return Math.min(60, Math.max(1, Math.round(seconds)));
}
