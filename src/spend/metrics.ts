import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from '../db/pool';
import type { Logger } from '../observability/logger';
import { listBudgets } from './ledger';

/**
 * Spend caps as gauges, read from the ledger at each scrape (so every worker
 * shows the same, current figures): the cap, what the current period has
 * spent or reserved, and what remains, per tenant and period. Only tenants
 * with a cap have series.
 */
export function registerSpendGauges(registry: Registry, db: Queryable, logger?: Logger): void {
  const labelNames = ['tenant', 'period'] as const;
  let reading: Promise<void> | undefined;
  // The three gauges' collects of one scrape share one read of the ledger.
  const refresh = () => (reading ??= read().finally(() => (reading = undefined)));
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers: [registry], collect: refresh });
  const limit = gauge('onceflow_budget_limit_micro_usd', 'Spend cap of the tenant for the period, in micro-USD');
  const spent = gauge('onceflow_budget_spent_micro_usd', 'Spent (settled) plus reserved (calls in flight) in the current period, in micro-USD');
  const remaining = gauge('onceflow_budget_remaining_micro_usd', 'What the tenant may still spend in the current period, in micro-USD');

  async function read(): Promise<void> {
    try {
      const standings = await listBudgets(db);
      for (const g of [limit, spent, remaining]) g.reset();
      for (const s of standings) {
        const labels = { tenant: s.tenantId, period: s.period };
        limit.set(labels, s.limitMicroUsd);
        spent.set(labels, s.spentMicroUsd);
        remaining.set(labels, s.remainingMicroUsd);
      }
    } catch (error) {
      // A scrape during a PostgreSQL outage keeps the last figures rather than failing the whole endpoint.
      logger?.warn({ err: (error as Error).message }, 'could not read spend caps for metrics');
    }
  }
}
