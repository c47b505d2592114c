/** `onceflow budgets set|remove|list`: per-tenant spend caps (see src/spend/ledger.ts). */
import { Command, InvalidArgumentError } from 'commander';
import { usageByMonth } from '../../operations/bill';
import { budgetPeriods, listBudgets, removeBudget, setBudget, type BudgetPeriod } from '../../spend/ledger';
import { runCommand, withJson, withPool } from '../context';
import { CliError, ExitCode } from '../errors';

function parseTenantId(value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new InvalidArgumentError('a tenant id is 1 to 64 characters of A-Z a-z 0-9 _ . -');
  return value;
}

function parsePeriod(value: string): BudgetPeriod {
  if (!(budgetPeriods as string[]).includes(value)) throw new InvalidArgumentError(`a period is one of ${budgetPeriods.join(', ')} (UTC calendar)`);
  return value as BudgetPeriod;
}

/** USD with at most 6 decimals, as integer micro-USD (no float rounding of the stored cap). */
function parseUsd(value: string): number {
  const match = /^(\d{1,9})(?:\.(\d{1,6}))?$/.exec(value);
  if (!match) throw new InvalidArgumentError('an amount in USD such as 50 or 12.5 (at most 6 decimals)');
  return Number(match[1]) * 1_000_000 + Number((match[2] ?? '').padEnd(6, '0'));
}

const usd = (microUsd: number) => (microUsd / 1_000_000).toFixed(6);

function parseMonth(value: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(value)) throw new InvalidArgumentError('a month as YYYY-MM');
  return `${value}-01`;
}

export function budgetsCommand(): Command {
  const budgets = new Command('budgets').description('per-tenant spend caps on paid Gemini calls');

  withJson(
    budgets
      .command('set')
      .description('set (or replace) a tenant’s cap for a period; a paid call that would pass it is not made (exit 3 if the tenant is unknown)')
      .argument('<tenant>', 'tenant id', parseTenantId)
      .argument('<period>', `${budgetPeriods.join(' or ')} (UTC calendar)`, parsePeriod)
      .argument('<usd>', 'the cap in USD, e.g. 50 or 12.5', parseUsd),
  ).action((tenantId: string, period: BudgetPeriod, limitMicroUsd: number, options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        if (!(await setBudget(pool, { tenantId, period, limitMicroUsd }))) throw new CliError(`no tenant ${tenantId}`, ExitCode.NotFound);
        if (context.json) return context.out.json({ tenantId, period, limitMicroUsd });
        context.out.line(`${tenantId} may spend ${usd(limitMicroUsd)} USD per ${period}`);
      }),
    ),
  );

  withJson(
    budgets
      .command('remove')
      .description('remove a tenant’s cap for a period (exit 3 if there was none)')
      .argument('<tenant>', 'tenant id', parseTenantId)
      .argument('<period>', budgetPeriods.join(' or '), parsePeriod),
  ).action((tenantId: string, period: BudgetPeriod, options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        if (!(await removeBudget(pool, { tenantId, period }))) throw new CliError(`${tenantId} has no ${period} cap`, ExitCode.NotFound);
        if (context.json) return context.out.json({ tenantId, period, removed: true });
        context.out.line(`removed the ${period} cap of ${tenantId}`);
      }),
    ),
  );

  withJson(
    budgets
      .command('list')
      .description('caps with what the current period has spent (settled plus reserved) and what remains')
      .argument('[tenant]', 'only this tenant', parseTenantId),
  ).action((tenantId: string | undefined, options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const standings = await listBudgets(pool, tenantId);
        if (context.json) return context.out.json(standings);
        context.out.table(
          standings.map((s) => ({ ...s, limit: usd(s.limitMicroUsd), spent: usd(s.spentMicroUsd), remaining: usd(s.remainingMicroUsd) })),
          [
            { key: 'tenantId', header: 'TENANT' },
            { key: 'period', header: 'PERIOD' },
            { key: 'periodStart', header: 'SINCE' },
            { key: 'limit', header: 'CAP USD' },
            { key: 'spent', header: 'SPENT USD' },
            { key: 'remaining', header: 'REMAINING USD' },
          ],
        );
      }),
    ),
  );

  withJson(
    budgets
      .command('usage')
      .description('what a tenant was billed, per UTC month, operation type and model (rolled-up months included)')
      .argument('<tenant>', 'tenant id', parseTenantId)
      .option('--since <month>', 'from this month on (YYYY-MM)', parseMonth),
  ).action((tenantId: string, options: { json?: boolean; since?: string }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const usage = await usageByMonth(pool, tenantId, options.since);
        if (context.json) return context.out.json(usage);
        context.out.table(
          usage.map((u) => ({ ...u, month: u.month.slice(0, 7), model: u.model ?? '-', cost: usd(u.costMicros) })),
          [
            { key: 'month', header: 'MONTH' },
            { key: 'operationType', header: 'TYPE' },
            { key: 'model', header: 'MODEL' },
            { key: 'operations', header: 'OPERATIONS' },
            { key: 'totalTokens', header: 'TOKENS' },
            { key: 'cost', header: 'COST USD' },
          ],
        );
      }),
    ),
  );

  return budgets;
}
