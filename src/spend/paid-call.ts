/**
 * What the Gemini activities call to keep a paid call inside its tenant's
 * spend caps: the guard's `admit` hook (reserve the worst case), the settle
 * of the actual cost when the answer is stored, the release when Gemini
 * answered with an error, and the activity failure of a refused call.
 */
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import { FailureType } from '../../workflows/failure-types';
import type { Queryable } from '../db/pool';
import { classifyGeminiError } from '../integrations/gemini/errors';
import type { GeminiMetrics } from '../integrations/gemini/metrics';
import type { Logger } from '../observability/logger';
import { estimateCostMicros, worstCaseCostMicros } from '../operations/pricing';
import { BudgetExceededError } from './errors';
import { releaseSpend, reserveSpend, settleSpend, type SpendKey } from './ledger';

export interface CappedCall extends SpendKey {
  /** Absent on activities scheduled before tenants were passed down: such a call is not capped. */
  tenantId?: string;
  model: string;
  /** Prompt and system instruction: their UTF-8 bytes bound the prompt's tokens. */
  promptText: string;
  maxOutputTokens?: number;
}

export interface SpendCap {
  /** The guard's `admit` hook: reserves the call's worst-case cost or throws BudgetExceededError. */
  admit: (tx: pg.PoolClient) => Promise<void>;
  /** In the transaction that stores the answer: its actual cost replaces the estimate. */
  settle: (db: Queryable, usage: { promptTokens: number; outputTokens: number }) => Promise<void>;
  /** After a failed call: gives the reservation back when Gemini answered with an error (nothing was paid); a dropped or timed-out call keeps it. */
  releaseIfUnpaid: (db: Queryable, error: unknown) => Promise<void>;
}

export function spendCap(call: CappedCall): SpendCap {
  const key = { operationId: call.operationId, step: call.step };
  return {
    admit: async (tx) => {
      if (call.tenantId === undefined) return;
      await reserveSpend(tx, { ...key, tenantId: call.tenantId, estimateMicroUsd: worstCaseCostMicros(call) });
    },
    settle: (db, usage) => settleSpend(db, { ...key, actualMicroUsd: estimateCostMicros({ model: call.model, ...usage }) }),
    releaseIfUnpaid: async (db, error) => {
      if (classifyGeminiError(error).status !== undefined) await releaseSpend(db, key);
    },
  };
}

/**
 * The activity failure of a call the spend cap refused, or undefined for any
 * other error. Final: the operation fails with `budget-exceeded`.
 */
export function budgetRefusal(
  error: unknown,
  context: { metrics: GeminiMetrics; owner: { tenant: string; operation_type: string }; logger?: Logger; log: object },
): ApplicationFailure | undefined {
  if (!(error instanceof BudgetExceededError)) return undefined;
  context.metrics.budgetRefusals.inc({ ...context.owner, period: error.period });
  context.logger?.info({ ...context.log, period: error.period, limitMicroUsd: error.limitMicroUsd, estimateMicroUsd: error.estimateMicroUsd }, 'paid call refused: spend cap reached');
  return ApplicationFailure.create({ type: FailureType.BudgetExceeded, message: error.message, nonRetryable: true, cause: error });
}
