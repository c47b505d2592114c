import { randomUUID } from 'node:crypto';
import { createPurgeExpiredOperations } from '../../activities/purge-expired-operations';
import type { Pool } from '../../src/db/pool';
import { billOperation, rollUpBills, usageByMonth } from '../../src/operations/bill';
import { parseJson, runCli } from '../cli/run-cli';
import { createTestPool, createTestTenant } from '../helpers/db';

/**
 * Bills are financial records: the maintenance pass never deletes them, it
 * rolls the months past ONCEFLOW_BILL_DETAIL_MONTHS into monthly summaries,
 * against the real PostgreSQL. Ages are moved in the database; the expected
 * figures are summed by SQL over the detail rows before the roll-up, not by
 * the code under test.
 */
describe('rolling up old bills', () => {
  let pool: Pool;
  beforeAll(() => {
    pool = createTestPool();
  });
  afterAll(() => pool.end());

  /** `n` bills of the tenant written `monthsAgo` whole months before the current one (0: this month). */
  async function bills(tenantId: string, n: number, monthsAgo: number, model: string, operationType = 'generate'): Promise<void> {
    for (let i = 0; i < n; i++) {
      const operationId = randomUUID();
      await billOperation(pool, { operationId, tenantId, operationType, usage: { model, promptTokens: 100 + i, outputTokens: 50 * i, totalTokens: 150 + 49 * i } });
      await pool.query(
        `UPDATE usage_ledger SET created_at = date_trunc('month', now(), 'UTC') - make_interval(months => $2) + make_interval(days => $3)
          WHERE operation_id = $1`,
        [operationId, monthsAgo, i % 27],
      );
    }
  }

  /** The tenant's bills as SQL sums them over usage_ledger and usage_monthly, per month, type and model. */
  async function totals(tenantId: string): Promise<Record<string, string>> {
    const { rows } = await pool.query<{ key: string; figures: string }>(
      `SELECT key, sum(operations) || '/' || sum(tokens) || '/' || sum(cost) AS figures FROM (
         SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') || ' ' || operation_type || ' ' || COALESCE(model, '') AS key,
                1 AS operations, total_tokens AS tokens, cost_micros AS cost FROM usage_ledger WHERE tenant_id = $1
         UNION ALL
         SELECT to_char(month, 'YYYY-MM') || ' ' || operation_type || ' ' || model, operations, total_tokens, cost_micros
           FROM usage_monthly WHERE tenant_id = $1) t
       GROUP BY key`,
      [tenantId],
    );
    return Object.fromEntries(rows.map((r) => [r.key, r.figures]));
  }

  const detailMonths = async (tenantId: string) =>
    (await pool.query<{ m: string }>("SELECT DISTINCT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS m FROM usage_ledger WHERE tenant_id = $1 ORDER BY 1", [tenantId])).rows.map((r) => r.m);

  it('moves months older than the detail retention into monthly summaries, once, even with two passes at once, and every reader sees the same figures', async () => {
    const tenantId = await createTestTenant(pool, 'bills');
    await bills(tenantId, 7, 20, 'gemini-2.5-pro');
    await bills(tenantId, 5, 20, 'gemini-2.5-flash');
    await bills(tenantId, 4, 20, 'gemini-2.5-flash', 'report');
    await bills(tenantId, 6, 14, 'gemini-2.5-flash');
    await bills(tenantId, 3, 13, 'gemini-2.5-flash');
    await bills(tenantId, 2, 0, 'gemini-2.5-flash');
    const before = await totals(tenantId);
    const usageBefore = await usageByMonth(pool, tenantId);
    expect(usageBefore.reduce((n, u) => n + u.operations, 0)).toBe(27);

    // Two passes at once, three rows per statement, then the maintenance pass itself.
    await Promise.all([rollUpBills(pool, { detailMonths: 13, batchSize: 3 }), rollUpBills(pool, { detailMonths: 13, batchSize: 3 })]);
    await createPurgeExpiredOperations({ pool, billDetailMonths: 13 })({});

    // The month 13 months back and the current one keep their detail; the older ones are summaries only.
    const kept = await detailMonths(tenantId);
    expect(kept).toHaveLength(2);
    const { rows: summaries } = await pool.query<{ month: string; operation_type: string; model: string; operations: string }>(
      "SELECT to_char(month, 'YYYY-MM') AS month, operation_type, model, operations::text FROM usage_monthly WHERE tenant_id = $1 ORDER BY month, operation_type, model",
      [tenantId],
    );
    expect(summaries.map((s) => [s.operation_type, s.model, s.operations])).toEqual([
      ['generate', 'gemini-2.5-flash', '5'],
      ['generate', 'gemini-2.5-pro', '7'],
      ['report', 'gemini-2.5-flash', '4'],
      ['generate', 'gemini-2.5-flash', '6'],
    ]);
    expect(summaries.map((s) => s.month).some((m) => kept.includes(m))).toBe(false);
    // Not one bill lost or counted twice, per month, type and model; the usage reader agrees before and after.
    expect(await totals(tenantId)).toEqual(before);
    expect(await usageByMonth(pool, tenantId)).toEqual(usageBefore);

    // A later pass has nothing of this tenant's left to roll up.
    await rollUpBills(pool, { detailMonths: 13 });
    expect(await totals(tenantId)).toEqual(before);
    expect(await detailMonths(tenantId)).toEqual(kept);
  });

  it('reads a tenant’s usage from a month on, summaries and detail together', async () => {
    const tenantId = await createTestTenant(pool, 'bills-since');
    await bills(tenantId, 2, 20, 'gemini-2.5-flash');
    await bills(tenantId, 3, 1, 'gemini-2.5-flash');
    await rollUpBills(pool, { detailMonths: 13 });
    const all = await usageByMonth(pool, tenantId);
    expect(all.map((u) => u.operations)).toEqual([3, 2]);
    const recent = await usageByMonth(pool, tenantId, all[0]!.month);
    expect(recent).toEqual([all[0]]);
    // The operator's CLI reads the same, summaries included.
    expect(parseJson(await runCli(['budgets', 'usage', tenantId, '--json']))).toEqual(all);
    expect(parseJson(await runCli(['budgets', 'usage', tenantId, '--since', all[0]!.month.slice(0, 7), '--json']))).toEqual([all[0]]);
  });
});
