/**
 * The bill: the one module that issues SQL on usage_ledger, exactly one entry
 * per operation (its primary key), written by the finishing phase in the
 * transaction that records the outcome and its event, and on usage_monthly,
 * where old months' entries are rolled up (rollUpBills) and read back with
 * the recent ones (usageByMonth).
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
  await tx.query({
    name: 'onceflow-bill',
    text: `INSERT INTO usage_ledger
       (operation_id, tenant_id, operation_type, model, prompt_tokens, output_tokens, total_tokens, cost_micros)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (operation_id) DO NOTHING`,
    values: [entry.operationId, entry.tenantId, entry.operationType, entry.usage.model, entry.usage.promptTokens,
      entry.usage.outputTokens, entry.usage.totalTokens, estimateCostMicros(entry.usage)],
  });
}

/**
 * Rolls up bills older than the current UTC month and the `detailMonths`
 * months before it: up to `batchSize` detail rows per statement are deleted from usage_ledger
 * and added to usage_monthly (tenant, month, type, model) in the same
 * statement, so a pass that dies midway has moved a batch or nothing: no bill
 * is lost or counted twice. SKIP LOCKED: a second pass at the same time
 * takes other rows (and stops when it meets only the first one's); the
 * summary rows are added to with ON CONFLICT, whichever pass comes first.
 * Whole months only: a month is either all detail or all summary, and
 * usageByMonth adds both anyway. The one-bill-per-operation key no longer
 * guards a rolled-up operation, which is harmless: its workflow and its row
 * were gone months before (operation retention is hours to days).
 */
export async function rollUpBills(db: Queryable, options: { detailMonths: number; batchSize?: number; maxBatches?: number }): Promise<{ rolledUp: number }> {
  const batchSize = options.batchSize ?? 1000;
  const maxBatches = options.maxBatches ?? 20;
  let rolledUp = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const { rows } = await db.query<{ n: number }>(
      `WITH moved AS (
         DELETE FROM usage_ledger WHERE operation_id IN (
           SELECT operation_id FROM usage_ledger
            WHERE created_at < date_trunc('month', now() - make_interval(months => $1), 'UTC')
            ORDER BY created_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
         RETURNING *),
       summed AS (
         INSERT INTO usage_monthly AS m (tenant_id, month, operation_type, model, operations, prompt_tokens, output_tokens, total_tokens, cost_micros)
         SELECT tenant_id, date_trunc('month', created_at, 'UTC')::date, operation_type, COALESCE(model, ''),
                count(*), sum(prompt_tokens), sum(output_tokens), sum(total_tokens), sum(cost_micros)
           FROM moved GROUP BY 1, 2, 3, 4
         ON CONFLICT (tenant_id, month, operation_type, model) DO UPDATE
           SET operations = m.operations + EXCLUDED.operations,
               prompt_tokens = m.prompt_tokens + EXCLUDED.prompt_tokens,
               output_tokens = m.output_tokens + EXCLUDED.output_tokens,
               total_tokens = m.total_tokens + EXCLUDED.total_tokens,
               cost_micros = m.cost_micros + EXCLUDED.cost_micros,
               rolled_up_at = now())
       SELECT count(*)::int AS n FROM moved`,
      [options.detailMonths, batchSize],
    );
    rolledUp += rows[0]!.n;
    if (rows[0]!.n < batchSize) break;
  }
  return { rolledUp };
}

/** A tenant's bills for one UTC month, one operation type and model. */
export interface MonthlyUsage {
  /** First day of the month, YYYY-MM-DD. */
  month: string;
  operationType: string;
  /** null for bills without a model. */
  model: string | null;
  operations: number;
  promptTokens: number;
  outputTokens: number;
  totalTokens: number;
  costMicros: number;
}

/**
 * A tenant's bills by month, type and model, newest month first, from
 * `sinceMonth` (YYYY-MM-DD, any day of it; default all): the detail rows and
 * the rolled-up months added together, so the figures are the same before
 * and after a roll-up. In one statement (one snapshot): a roll-up committing
 * meanwhile is seen wholly or not at all.
 */
export async function usageByMonth(db: Queryable, tenantId: string, sinceMonth?: string): Promise<MonthlyUsage[]> {
  const { rows } = await db.query<{
    month: string; operation_type: string; model: string; operations: string; prompt_tokens: string; output_tokens: string; total_tokens: string; cost_micros: string;
  }>(
    `WITH since AS (SELECT date_trunc('month', COALESCE($2::date, '-infinity'::date)::timestamp)::date AS month)
     SELECT to_char(month, 'YYYY-MM-DD') AS month, operation_type, model,
            sum(operations) AS operations, sum(prompt_tokens) AS prompt_tokens, sum(output_tokens) AS output_tokens,
            sum(total_tokens) AS total_tokens, sum(cost_micros) AS cost_micros
       FROM (SELECT date_trunc('month', created_at, 'UTC')::date AS month, operation_type, COALESCE(model, '') AS model,
                    1 AS operations, prompt_tokens, output_tokens, total_tokens, cost_micros
               FROM usage_ledger WHERE tenant_id = $1
             UNION ALL
             SELECT month, operation_type, model, operations, prompt_tokens, output_tokens, total_tokens, cost_micros
               FROM usage_monthly WHERE tenant_id = $1) bills
      WHERE month >= (SELECT month FROM since)
      GROUP BY month, operation_type, model
      ORDER BY month DESC, operation_type, model`,
    [tenantId, sinceMonth ?? null],
  );
  return rows.map((r) => ({
    month: r.month,
    operationType: r.operation_type,
    model: r.model === '' ? null : r.model,
    operations: Number(r.operations),
    promptTokens: Number(r.prompt_tokens),
    outputTokens: Number(r.output_tokens),
    totalTokens: Number(r.total_tokens),
    costMicros: Number(r.cost_micros),
  }));
}
