import type { Queryable } from '../db/pool';

/**
 * Deletes the effect rows of operations that are gone: the stored Gemini
 * answers among them hold generated text, which must not outlive the
 * operation's retention. Called in the transaction that purges the
 * operations, so a crash between the two cannot leave answers behind with
 * nothing left to find them by. One index probe per operation (the primary
 * key starts with operation_id).
 */
export async function deleteEffectsOf(db: Queryable, operationIds: readonly string[]): Promise<number> {
  if (operationIds.length === 0) return 0;
  const { rowCount } = await db.query('DELETE FROM effects WHERE operation_id = ANY($1::uuid[])', [operationIds]);
  return rowCount ?? 0;
}

/**
 * How long a retired operation id waits before its records go: longer than
 * any activity of its run can still be running. A run ends at its key's
 * expiry (its execution timeout), but an activity attempt already under way
 * (a Gemini call: 2 minutes at most, activityOptions.geminiCall) finishes and
 * may write its effect and attempt rows after the key was reserved again;
 * deleted earlier, those rows would be left behind for good.
 */
export const RETIRED_GRACE_MS = 3_600_000;

export interface RetiredRecordsReport {
  /** Retired operation ids whose records were deleted (and the ids with them). */
  operations: number;
  effects: number;
  attempts: number;
  interactions: number;
}

/**
 * Deletes what is keyed by operation ids that no longer name an operation
 * (`retired_operations`, migration 014: purged, or superseded when an
 * expired or released key was reserved again under a new id): stored effects
 * (Gemini answers), Gemini attempt rows and background-interaction rows. Up
 * to `batchSize` ids per call, retired at least `graceMs` ago, in one
 * statement (so an id leaves the list only with its records). Spend
 * reservations are not here: they are pruned by age with their periods
 * (src/spend/ledger.ts, pruneSpend). Outbox events are pruned by age too
 * (activities/prune-outbox.ts), whichever operation wrote them.
 */
export async function deleteRetiredRecords(db: Queryable, options: { batchSize: number; graceMs?: number }): Promise<RetiredRecordsReport> {
  const { rows } = await db.query<{ operations: number; effects: number; attempts: number; interactions: number }>(
    `WITH batch AS (
       SELECT operation_id FROM retired_operations
        WHERE retired_at < now() - make_interval(secs => $1 / 1000.0)
        ORDER BY retired_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED),
     effects_gone AS (DELETE FROM effects WHERE operation_id IN (SELECT operation_id FROM batch) RETURNING 1),
     attempts_gone AS (DELETE FROM gemini_attempts WHERE operation_id IN (SELECT operation_id FROM batch) RETURNING 1),
     interactions_gone AS (DELETE FROM gemini_interactions WHERE operation_id IN (SELECT operation_id FROM batch) RETURNING 1),
     ids_gone AS (DELETE FROM retired_operations WHERE operation_id IN (SELECT operation_id FROM batch) RETURNING 1)
     SELECT (SELECT count(*) FROM ids_gone)::int AS operations,
            (SELECT count(*) FROM effects_gone)::int AS effects,
            (SELECT count(*) FROM attempts_gone)::int AS attempts,
            (SELECT count(*) FROM interactions_gone)::int AS interactions`,
    [options.graceMs ?? RETIRED_GRACE_MS, options.batchSize],
  );
  return rows[0]!;
}
