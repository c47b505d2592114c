import type pg from 'pg';
import { withTransaction } from '../src/db/transaction';
import { deleteEffectsOf, deleteRetiredRecords, type RetiredRecordsReport } from '../src/effects/retention';
import { PostgresOperationsRepository } from '../src/operations/repository';
import { rollUpBills } from '../src/operations/bill';
import { pruneSpend, type SpendPruneReport } from '../src/spend/ledger';

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
  /** ONCEFLOW_SPEND_RETENTION_DAYS. Default 7. */
  spendRetentionDays?: number;
  /** ONCEFLOW_BILL_DETAIL_MONTHS. Default 13. */
  billDetailMonths?: number;
}

export interface PurgeReport {
  purged: number;
  /** Records of retired operation ids (purged, or superseded by a new run of their key). */
  retired: RetiredRecordsReport;
  spend: SpendPruneReport;
  /** Bills rolled up into monthly summaries (src/operations/bill.ts, rollUpBills). */
  bills: { rolledUp: number };
}

/**
 * Deletes finished operation rows past their type's retention, in batches,
 * each batch with its operations' effects (the stored Gemini answers) in one transaction.
 * Unfinished rows are never deleted here: the reconciler first closes them, so
 * a run that is still going never loses its row. A deleted key is free: the
 * next request with it starts a new operation (and GET answers 404).
 *
 * Then what is keyed by operation ids that no longer name an operation
 * (effects, Gemini attempts and interactions of purged and of superseded
 * runs: src/effects/retention.ts), and the spend records no cap reads any
 * more (src/spend/ledger.ts, pruneSpend). Without these two, a key reused
 * after its expiry left its old run's answers behind for good. Bills are
 * never deleted: old months are rolled up into monthly summaries
 * (src/operations/bill.ts, rollUpBills).
 */
export function createPurgeExpiredOperations(deps: PurgeExpiredOperationsDeps) {
  const clock = deps.clock ?? Date.now;
  return async function purgeExpiredOperations(input: PurgeExpiredOperationsInput = {}): Promise<PurgeReport> {
    const batchSize = input.batchSize ?? 500;
    const maxBatches = input.maxBatches ?? 20;
    const nowMs = clock();
    let purged = 0;
    for (let batch = 0; batch < maxBatches; batch++) {
      const deleted = await withTransaction(deps.pool, async (tx) => {
        const operationIds = await new PostgresOperationsRepository(tx).purgeExpiredIds({ nowMs, limit: batchSize });
        await deleteEffectsOf(tx, operationIds);
        return operationIds.length;
      });
      purged += deleted;
      if (deleted < batchSize) break;
    }
    const retired: RetiredRecordsReport = { operations: 0, effects: 0, attempts: 0, interactions: 0 };
    for (let batch = 0; batch < maxBatches; batch++) {
      const report = await deleteRetiredRecords(deps.pool, { batchSize });
      for (const key of Object.keys(retired) as (keyof RetiredRecordsReport)[]) retired[key] += report[key];
      if (report.operations < batchSize) break;
    }
    const spend = await pruneSpend(deps.pool, { retentionDays: deps.spendRetentionDays ?? 7, batchSize, maxBatches });
    const bills = await rollUpBills(deps.pool, { detailMonths: deps.billDetailMonths ?? 13, batchSize, maxBatches });
    return { purged, retired, spend, bills };
  };
}
