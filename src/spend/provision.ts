import type { Config } from '../config';
import type { Queryable } from '../db/pool';
import type { Logger } from '../observability/logger';
import { setBudget } from './ledger';

/**
 * Sets the caps of ONCEFLOW_BUDGETS at worker start; each replaces the
 * tenant's cap for that period (as `onceflow budgets set` does). A tenant
 * that does not exist yet is skipped with a warning: the next start sets it.
 */
export async function provisionBudgets(db: Queryable, budgets: NonNullable<Config['ONCEFLOW_BUDGETS']>, logger: Logger): Promise<void> {
  for (const budget of budgets) {
    if (!(await setBudget(db, budget))) logger.warn({ tenant: budget.tenantId, period: budget.period }, 'ONCEFLOW_BUDGETS names a tenant that does not exist; its cap is not set');
  }
}
