import { randomUUID } from 'node:crypto';
import { createPurgeExpiredOperations } from '../../activities/purge-expired-operations';
import type { Pool } from '../../src/db/pool';
import { withTransaction } from '../../src/db/transaction';
import { listBudgets, reserveSpend, setBudget, settleSpend } from '../../src/spend/ledger';
import { createTestPool, createTestTenant } from '../helpers/db';

/**
 * The maintenance pass prunes spend records that no cap reads any more
 * (settled reservations, unsettled ones whose month is over, past periods),
 * against the real PostgreSQL, and leaves what still counts. Ages are moved in
 * the database, not in the code under test.
 */
describe('pruning spend records', () => {
  let pool: Pool;
  beforeAll(() => {
    pool = createTestPool();
  });
  afterAll(() => pool.end());

  const reserve = (tenantId: string, operationId: string, estimateMicroUsd: number) =>
    withTransaction(pool, (tx) => reserveSpend(tx, { operationId, step: 'gemini', tenantId, estimateMicroUsd }));
  const reservation = async (operationId: string) => (await pool.query('SELECT 1 FROM budget_reservations WHERE operation_id = $1', [operationId])).rowCount;

  it('deletes settled reservations and ended periods past the retention, keeps the current periods and what may still settle', async () => {
    const tenantId = await createTestTenant(pool, 'spend-prune');
    for (const period of ['day', 'month'] as const) await setBudget(pool, { tenantId, period, limitMicroUsd: 1_000_000 });
    const [settledOld, settledRecent, unsettledOldMonth, unsettledThisMonth] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    for (const id of [settledOld, settledRecent, unsettledOldMonth, unsettledThisMonth]) await reserve(tenantId, id, 1_000);
    await settleSpend(pool, { operationId: settledOld, step: 'gemini', actualMicroUsd: 900 });
    await settleSpend(pool, { operationId: settledRecent, step: 'gemini', actualMicroUsd: 900 });
    await pool.query("UPDATE budget_reservations SET settled_at = now() - interval '10 days', reserved_at = now() - interval '10 days' WHERE operation_id = $1", [settledOld]);
    await pool.query("UPDATE budget_reservations SET reserved_at = date_trunc('month', now(), 'UTC') - interval '2 months' WHERE operation_id = $1", [unsettledOldMonth]);
    await pool.query("UPDATE budget_reservations SET reserved_at = date_trunc('month', now(), 'UTC') WHERE operation_id = $1", [unsettledThisMonth]);
    // Past periods, as days and months of traffic leave them.
    await pool.query(
      `INSERT INTO budget_spend (tenant_id, period, period_start, spent_micro_usd) VALUES
         ($1, 'day', date_trunc('day', now(), 'UTC') - interval '10 days', 5),
         ($1, 'day', date_trunc('day', now(), 'UTC') - interval '1 day', 6),
         ($1, 'month', date_trunc('month', now(), 'UTC') - interval '2 months', 7)`,
      [tenantId],
    );
    const standingBefore = await listBudgets(pool, tenantId);

    const report = await createPurgeExpiredOperations({ pool, spendRetentionDays: 7 })({});

    expect(await reservation(settledOld)).toBe(0);
    expect(await reservation(unsettledOldMonth)).toBe(0);
    expect(await reservation(settledRecent)).toBe(1);
    expect(await reservation(unsettledThisMonth)).toBe(1);
    const { rows } = await pool.query<{ period: string; spent: string }>(
      "SELECT period, spent_micro_usd::text AS spent FROM budget_spend WHERE tenant_id = $1 ORDER BY period, period_start",
      [tenantId],
    );
    // Yesterday's day (ended within the retention) and the current day and month stay; the day of 10 days ago and the month of 2 months ago go.
    expect(rows.map((r) => r.spent)).not.toContain('5');
    expect(rows.map((r) => r.spent)).not.toContain('7');
    expect(rows.filter((r) => r.period === 'day').map((r) => r.spent)).toContain('6');
    // The caps read the current periods only: what they see did not change.
    expect(await listBudgets(pool, tenantId)).toEqual(standingBefore);
    expect(report.spend.reservations).toBeGreaterThanOrEqual(2);
    expect(report.spend.periods).toBeGreaterThanOrEqual(2);
  });
});
