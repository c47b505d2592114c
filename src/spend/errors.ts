import { CallRefusedError } from '../effects/errors';

/**
 * Thrown by reserveSpend, in the transaction that guards a paid call, when the
 * call's worst-case cost would take the tenant past one of its budgets: the
 * call is not made and the reservation is rolled back with the transaction.
 */
export class BudgetExceededError extends CallRefusedError<{ tenantId: string; period: string; limitMicroUsd: number; spentMicroUsd: number; estimateMicroUsd: number }> {
  override readonly name = 'BudgetExceededError';
  constructor(
    readonly tenantId: string,
    readonly period: string,
    readonly limitMicroUsd: number,
    readonly spentMicroUsd: number,
    readonly estimateMicroUsd: number,
  ) {
    super(
      `the ${period} spend cap of tenant ${tenantId} is ${usd(limitMicroUsd)}; ${usd(spentMicroUsd)} is spent or reserved and this call may cost up to ${usd(estimateMicroUsd)}`,
      { context: { tenantId, period, limitMicroUsd, spentMicroUsd, estimateMicroUsd } },
    );
  }
}

function usd(microUsd: number): string {
  return `${(microUsd / 1_000_000).toFixed(6).replace(/0{1,4}$/, '')} USD`;
}
