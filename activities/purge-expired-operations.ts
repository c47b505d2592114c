import type pg from 'pg';
import { withTransaction } from '../src/db/transaction';
import { deleteEffectsOf } from '../src/effects/retention';
import { PostgresOperationsRepository } from '../src/operations/repository';

export interface PurgeExpiredOperationsInput {
  /** Rows deleted per statement; small batches keep locks short. Default 500. */
  batchSize?: number;
  /** Statements per pass; the next scheduled pass continues. Default 20. */
  maxBatches?: number;
}

export interface PurgeExpiredOperationsDeps {
  pool: pg.Pool;
  /** Epoch ms; default Date.now. Tests pass literal timestamps. */
  clock?: () => number;
}

/**
 * Deletes finished operation rows past their type's retention, in batches,
 * each batch with its operations' effects (the stored Gemini answers) in one transaction.
 * Unfinished rows are never deleted here: the reconciler first closes them, so
 * a run that is still going never loses its row. A deleted key is free: the
 * next request with it starts a new operation (and GET answers 404).
 */
export function createPurgeExpiredOperations(deps: PurgeExpiredOperationsDeps) {
  const clock = deps.clock ?? Date.now;
  return async function purgeExpiredOperations(input: PurgeExpiredOperationsInput = {}): Promise<{ purged: number }> {
    const batchSize = input.batchSize ?? 500;
    const nowMs = clock();
    let purged = 0;
    for (let batch = 0; batch < (input.maxBatches ?? 20); batch++) {
      const deleted = await withTransaction(deps.pool, async (tx) => {
        const operationIds = await new PostgresOperationsRepository(tx).purgeExpiredIds({ nowMs, limit: batchSize });
        await deleteEffectsOf(tx, operationIds);
        return operationIds.length;
      });
      purged += deleted;
      if (deleted < batchSize) break;
    }
    return { purged };
  };
}
