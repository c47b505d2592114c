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
