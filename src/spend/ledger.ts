/**
 * The spend ledger: the one module that issues SQL on tenant_budgets,
 * budget_spend and budget_reservations (migration 011).
 *
 * A paid call reserves its worst-case cost (reserveSpend) in the transaction
 * that guards it, before it is made; the reservation updates the tenant's
 * budget_spend row of each capped period, whose row lock serialises the
 * tenant's concurrent calls, and checks the limit in the same transaction: the
 * sum of what is reserved and settled never passes a cap. When the answer is
 * stored, its actual cost replaces the estimate (settleSpend, in the storing
 * transaction); a call Gemini refused with an error costs nothing and gives
 * its reservation back (releaseSpend).
 */
import type pg from 'pg';
import type { Queryable } from '../db/pool';
import { BudgetExceededError } from './errors';

export const BudgetPeriod = { Day: 'day', Month: 'month' } as const;
export type BudgetPeriod = (typeof BudgetPeriod)[keyof typeof BudgetPeriod];
export const budgetPeriods = Object.values(BudgetPeriod);

export interface Budget {
  tenantId: string;
  period: BudgetPeriod;
  limitMicroUsd: number;
}

export interface BudgetStanding extends Budget {
  /** Start of the current period (UTC). */
  periodStart: Date;
  /** Settled costs plus open reservations in the current period. */
  spentMicroUsd: number;
  remainingMicroUsd: number;
}

/** One paid step's reservation: (operation, step) as the guard keys it. */
export interface SpendKey {
  operationId: string;
  step: string;
}

/** Sets (or replaces) a tenant's cap for a period. False when the tenant is unknown. */
export async function setBudget(db: Queryable, budget: Budget): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO tenant_budgets (tenant_id, period, limit_micro_usd)
     SELECT tenant_id, $2, $3 FROM tenants WHERE tenant_id = $1
     ON CONFLICT (tenant_id, period) DO UPDATE SET limit_micro_usd = EXCLUDED.limit_micro_usd, updated_at = now()`,
    [budget.tenantId, budget.period, budget.limitMicroUsd],
  );
  return (rowCount ?? 0) > 0;
}

/** Removes a tenant's cap for a period (spending is then uncapped for it). False when there was none. */
export async function removeBudget(db: Queryable, budget: Pick<Budget, 'tenantId' | 'period'>): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM tenant_budgets WHERE tenant_id = $1 AND period = $2', [budget.tenantId, budget.period]);
  return (rowCount ?? 0) > 0;
}

/** Every cap (of one tenant, when given) with what the current period has spent and reserved. */
export async function listBudgets(db: Queryable, tenantId?: string): Promise<BudgetStanding[]> {
  const { rows } = await db.query<{ tenant_id: string; period: BudgetPeriod; limit_micro_usd: string; period_start: Date; spent_micro_usd: string }>(
    `SELECT b.tenant_id, b.period, b.limit_micro_usd, p.period_start, COALESCE(s.spent_micro_usd, 0) AS spent_micro_usd
       FROM tenant_budgets b
       CROSS JOIN LATERAL (SELECT date_trunc(b.period, now(), 'UTC') AS period_start) p
       LEFT JOIN budget_spend s ON s.tenant_id = b.tenant_id AND s.period = b.period AND s.period_start = p.period_start
      WHERE $1::text IS NULL OR b.tenant_id = $1
      ORDER BY b.tenant_id, b.period`,
    [tenantId ?? null],
  );
  return rows.map((row) => {
    const limitMicroUsd = Number(row.limit_micro_usd);
    const spentMicroUsd = Number(row.spent_micro_usd);
    return {
      tenantId: row.tenant_id, period: row.period, limitMicroUsd, periodStart: row.period_start,
      spentMicroUsd, remainingMicroUsd: Math.max(0, limitMicroUsd - spentMicroUsd),
    };
  });
}

/** What a paid step finds before its call: whether its tenant has a cap, and whether the step already holds an unsettled reservation. */
export interface StepStanding {
  capped: boolean;
  reserved: boolean;
}

/**
 * One read, outside any transaction: a step of an uncapped tenant with no
 * reservation of an earlier attempt has nothing to reserve, settle or
 * release, so it needs no transaction and none of those statements. A cap set
 * just after this read applies from the tenant's next call, as it would if it
 * had been set just after a reservation committed.
 */
export async function stepStanding(db: Queryable, input: SpendKey & { tenantId: string }): Promise<StepStanding> {
  const { rows } = await db.query<StepStanding>({
    name: 'onceflow-spend-standing',
    text: `SELECT EXISTS (SELECT 1 FROM tenant_budgets WHERE tenant_id = $3) AS capped,
                  EXISTS (SELECT 1 FROM budget_reservations WHERE operation_id = $1 AND step = $2 AND settled_at IS NULL) AS reserved`,
    values: [input.operationId, input.step, input.tenantId],
  });
  return rows[0]!;
}

/**
 * Reserves `estimateMicroUsd` for one paid step against every cap of the
 * tenant, inside the caller's transaction `tx`; throws BudgetExceededError
 * (the caller rolls back) when any cap would be passed. A tenant without caps
 * reserves nothing. A step that already holds a reservation (an earlier
 * attempt whose call may have been paid: a dropped answer) keeps it and is
 * admitted again without reserving twice.
 */
export async function reserveSpend(tx: pg.PoolClient, input: SpendKey & { tenantId: string; estimateMicroUsd: number }): Promise<void> {
  const { rows: reserved } = await tx.query<{ reserved_at: Date }>({
    name: 'onceflow-spend-reserve',
    text: `INSERT INTO budget_reservations (operation_id, step, tenant_id, estimate_micro_usd)
     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM tenant_budgets WHERE tenant_id = $3)
     ON CONFLICT (operation_id, step) DO NOTHING
     RETURNING reserved_at`,
    values: [input.operationId, input.step, input.tenantId, input.estimateMicroUsd],
  });
  if (reserved.length === 0) return;
  await tx.query(
    `INSERT INTO budget_spend (tenant_id, period, period_start)
     SELECT tenant_id, period, date_trunc(period, $2::timestamptz, 'UTC') FROM tenant_budgets WHERE tenant_id = $1
     ON CONFLICT DO NOTHING`,
    [input.tenantId, reserved[0]!.reserved_at],
  );
  // Rows locked in period order, so a tenant's day and month rows never deadlock two reservations.
  const { rows } = await tx.query<{ period: string; spent_micro_usd: string; limit_micro_usd: string }>(
    `WITH locked AS (
       SELECT s.tenant_id, s.period, s.period_start, b.limit_micro_usd
         FROM budget_spend s JOIN tenant_budgets b ON b.tenant_id = s.tenant_id AND b.period = s.period
        WHERE s.tenant_id = $1 AND s.period_start = date_trunc(s.period, $2::timestamptz, 'UTC')
        ORDER BY s.period FOR UPDATE OF s)
     UPDATE budget_spend s SET spent_micro_usd = s.spent_micro_usd + $3
       FROM locked l WHERE s.tenant_id = l.tenant_id AND s.period = l.period AND s.period_start = l.period_start
     RETURNING s.period, s.spent_micro_usd, l.limit_micro_usd`,
    [input.tenantId, reserved[0]!.reserved_at, input.estimateMicroUsd],
  );
  const passed = rows.find((row) => Number(row.spent_micro_usd) > Number(row.limit_micro_usd));
  if (passed) {
    throw new BudgetExceededError(input.tenantId, passed.period, Number(passed.limit_micro_usd), Number(passed.spent_micro_usd) - input.estimateMicroUsd, input.estimateMicroUsd);
  }
}

/**
 * Replaces a step's estimate with its actual cost, once (a second settle of the
 * same step changes nothing). One statement, so it runs in the storing
 * transaction or alone. A step that reserved nothing (no cap) settles nothing.
 */
export async function settleSpend(db: Queryable, input: SpendKey & { actualMicroUsd: number }): Promise<void> {
  await db.query({
    name: 'onceflow-spend-settle',
    text: `WITH r AS (
       UPDATE budget_reservations SET actual_micro_usd = $3, settled_at = now()
        WHERE operation_id = $1 AND step = $2 AND settled_at IS NULL
        RETURNING tenant_id, estimate_micro_usd, reserved_at),
     locked AS (
       SELECT s.tenant_id, s.period, s.period_start, r.estimate_micro_usd
         FROM budget_spend s JOIN r ON s.tenant_id = r.tenant_id AND s.period_start = date_trunc(s.period, r.reserved_at, 'UTC')
        ORDER BY s.period FOR UPDATE OF s)
     UPDATE budget_spend s SET spent_micro_usd = s.spent_micro_usd + $3 - l.estimate_micro_usd
       FROM locked l WHERE s.tenant_id = l.tenant_id AND s.period = l.period AND s.period_start = l.period_start`,
    values: [input.operationId, input.step, input.actualMicroUsd],
  });
}

/** Gives back an unsettled reservation: the call was answered with an error, so it cost nothing. */
export async function releaseSpend(db: Queryable, input: SpendKey): Promise<void> {
  await db.query(
    `WITH r AS (
       DELETE FROM budget_reservations WHERE operation_id = $1 AND step = $2 AND settled_at IS NULL
       RETURNING tenant_id, estimate_micro_usd, reserved_at),
     locked AS (
       SELECT s.tenant_id, s.period, s.period_start, r.estimate_micro_usd
         FROM budget_spend s JOIN r ON s.tenant_id = r.tenant_id AND s.period_start = date_trunc(s.period, r.reserved_at, 'UTC')
        ORDER BY s.period FOR UPDATE OF s)
     UPDATE budget_spend s SET spent_micro_usd = s.spent_micro_usd - l.estimate_micro_usd
       FROM locked l WHERE s.tenant_id = l.tenant_id AND s.period = l.period AND s.period_start = l.period_start`,
    [input.operationId, input.step],
  );
}

export interface SpendPruneReport {
  /** Reservations deleted: settled ones, and unsettled ones whose periods are all over. */
  reservations: number;
  /** budget_spend rows of periods that ended. */
  periods: number;
}

/**
 * Deletes the spend records no cap will read again, older than `retentionDays`:
 * - settled reservations (their cost is in budget_spend and, as billed, in
 *   usage_ledger);
 * - unsettled reservations (a dropped or timed-out call keeps its worst case,
 *   see paid-call.ts) reserved in a month that ended before the retention
 *   began: every period they count in is over, so no settle or release can
 *   still change a cap that matters;
 * - budget_spend rows of periods (day, month) that ended before it.
 * The current period's row of every capped tenant is never touched, whatever
 * the retention. Up to `batchSize` rows per statement, at most `maxBatches`
 * statements per kind, each committing alone: the next maintenance pass
 * continues where this one stopped.
 */
export async function pruneSpend(db: Queryable, options: { retentionDays: number; batchSize?: number; maxBatches?: number }): Promise<SpendPruneReport> {
  const batchSize = options.batchSize ?? 1000;
  const maxBatches = options.maxBatches ?? 20;
  const report: SpendPruneReport = { reservations: 0, periods: 0 };
  const statements: [keyof SpendPruneReport, string][] = [
    [
      'reservations',
      `DELETE FROM budget_reservations WHERE ctid IN (
         SELECT ctid FROM budget_reservations
          WHERE settled_at IS NOT NULL AND settled_at < now() - make_interval(days => $1)
          LIMIT $2)`,
    ],
    [
      'reservations',
      `DELETE FROM budget_reservations WHERE ctid IN (
         SELECT ctid FROM budget_reservations
          WHERE settled_at IS NULL AND reserved_at < date_trunc('month', now() - make_interval(days => $1), 'UTC')
          LIMIT $2)`,
    ],
    [
      'periods',
      `DELETE FROM budget_spend WHERE ctid IN (
         SELECT ctid FROM budget_spend
          WHERE period_start + CASE period WHEN 'day' THEN interval '1 day' ELSE interval '1 month' END < now() - make_interval(days => $1)
          LIMIT $2)`,
    ],
  ];
  for (const [kind, sql] of statements) {
    for (let batch = 0; batch < maxBatches; batch++) {
      const { rowCount } = await db.query(sql, [options.retentionDays, batchSize]);
      report[kind] += rowCount ?? 0;
      if ((rowCount ?? 0) < batchSize) break;
    }
  }
  return report;
}
