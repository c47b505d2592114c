/**
 * The bill: the one module that issues SQL on usage_ledger, exactly one entry
 * per operation (its primary key), written by the finishing phase in the
 * transaction that records the outcome and its event.
 */
import type { Queryable } from '../db/pool';
import { estimateCostMicros } from './pricing';

export interface BillEntry {
  operationId: string;
  tenantId: string;
  operationType: string;
  usage: { model: string; promptTokens: number; outputTokens: number; totalTokens: number };
}

/** Bills an operation once; a second bill of the same operation is ignored. */
export async function billOperation(tx: Queryable, entry: BillEntry): Promise<void> {
  await tx.query(
    `INSERT INTO usage_ledger
       (operation_id, tenant_id, operation_type, model, prompt_tokens, output_tokens, total_tokens, cost_micros)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (operation_id) DO NOTHING`,
    [entry.operationId, entry.tenantId, entry.operationType, entry.usage.model, entry.usage.promptTokens,
      entry.usage.outputTokens, entry.usage.totalTokens, estimateCostMicros(entry.usage)],
  );
}
