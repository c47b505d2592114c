import type pg from 'pg';
import { withTransaction } from '../db/transaction';

/** Identifies one side effect: a step of one operation. */
export interface EffectKey {
  /** Our reservation id; a new run under the same key gets a new one. */
  operationId: string;
  /** Stable step name within the operation, e.g. `gemini:gemini-2.5-flash:attempt-1` or `complete`. */
  step: string;
  /** For operators reading the table. */
  workflowId: string;
}

/** The stored result of a step, or undefined if it has not completed. */
export async function findEffect<T>(db: Pick<pg.Pool, 'query'>, key: EffectKey): Promise<T | undefined> {
  const { rows } = await db.query<{ result: T }>(
    'SELECT result FROM effects WHERE operation_id = $1 AND step = $2',
    [key.operationId, key.step],
  );
  return rows[0]?.result;
}

/**
 * The side-effect guard, the one way activities record effects in PostgreSQL.
 *
 * 1. Look up (operation, step); if done, return the stored result: nothing runs again.
 * 2. Otherwise open a transaction, take a transaction-scoped advisory lock on the
 *    step (a second worker running the same step concurrently waits here, then
 *    sees the first one's row), check again, run `effect` on the same connection,
 *    and insert the effect row in the same transaction.
 *
 * Crash windows: if the process dies anywhere before COMMIT, the transaction
 * rolls back and every database write of `effect` with it; the retried activity
 * runs it again from scratch. After COMMIT, a retry returns the stored result.
 * Effects outside this database (an HTTP call) are not covered by the rollback:
 * those callers store the foreign response through this guard right after the
 * call and accept the window between the call and COMMIT (see the Gemini activity).
 */
export async function runEffect<T>(
  pool: pg.Pool,
  key: EffectKey,
  effect: (tx: pg.PoolClient) => Promise<T>,
): Promise<{ result: T; replayed: boolean }> {
  const stored = await findEffect<T>(pool, key);
  if (stored !== undefined) return { result: stored, replayed: true };
  return withTransaction(pool, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${key.operationId}:${key.step}`]);
    const again = await findEffect<T>(tx, key);
    if (again !== undefined) return { result: again, replayed: true };
    const result = await effect(tx);
    await tx.query(
      'INSERT INTO effects (operation_id, step, workflow_id, result) VALUES ($1, $2, $3, $4)',
      [key.operationId, key.step, key.workflowId, JSON.stringify(result ?? null)],
    );
    return { result, replayed: false };
  });
}
