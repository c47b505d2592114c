/**
 * What the Gemini activities call to keep a paid call inside its tenant's
 * spend caps: reserve the worst case before the call (`admit` in the claim's
 * transaction, or `claim` as the guard's claim hook), the settle of the actual
 * cost when the answer is stored, the release when Gemini answered with an
 * error. A refused call's activity failure is the Gemini edge's
 * (toGeminiCallFailure, src/integrations/gemini/errors.ts).
 */
import type pg from 'pg';
import type { Queryable } from '../db/pool';
import type { ClaimScope } from '../effects/guard';
import { classifyGeminiError } from '../integrations/gemini/errors';
import { estimateCostMicros, worstCaseCostMicros } from '../operations/pricing';
import { releaseSpend, reserveSpend, settleSpend, stepStanding, type SpendKey, type StepStanding } from './ledger';

export interface CappedCall extends SpendKey {
  /** Absent on activities scheduled before tenants were passed down: such a call is not capped. */
  tenantId?: string;
  model: string;
  /** Prompt and system instruction: their UTF-8 bytes bound the prompt's tokens. */
  promptText: string;
  maxOutputTokens?: number;
}

export interface SpendCap {
  /** Reserves the call's worst-case cost in the caller's transaction, or throws BudgetExceededError. */
  admit: (tx: pg.PoolClient) => Promise<void>;
  /**
   * The same as the guard's claim hook, in the fewest statements: one read
   * (stepStanding) and, only for a capped tenant, a transaction that reserves.
   * After it, settle and release skip their statements when there is nothing
   * to settle or release (no cap, no earlier reservation of the step).
   */
  claim: (scope: ClaimScope) => Promise<void>;
  /** In the transaction that stores the answer: its actual cost replaces the estimate. */
  settle: (db: Queryable, usage: { promptTokens: number; outputTokens: number }) => Promise<void>;
  /** After a failed call: gives the reservation back when Gemini answered with an error (nothing was paid); a dropped or timed-out call keeps it. */
  releaseIfUnpaid: (db: Queryable, error: unknown) => Promise<void>;
}

export function spendCap(call: CappedCall): SpendCap {
  const key = { operationId: call.operationId, step: call.step };
  /** Set by `claim`; undefined (as after `admit`) means settle and release always run. */
  let standing: StepStanding | undefined;
  const nothingHeld = () => call.tenantId === undefined || (standing !== undefined && !standing.capped && !standing.reserved);
  const admit = async (tx: pg.PoolClient) => {
    if (call.tenantId === undefined) return;
    await reserveSpend(tx, { ...key, tenantId: call.tenantId, estimateMicroUsd: worstCaseCostMicros(call) });
  };
  return {
    admit,
    claim: async ({ db, transaction }) => {
      if (call.tenantId === undefined) return;
      standing = await stepStanding(db, { ...key, tenantId: call.tenantId });
      if (standing.capped) await transaction(admit);
    },
    settle: async (db, usage) => {
      if (nothingHeld()) return;
      await settleSpend(db, { ...key, actualMicroUsd: estimateCostMicros({ model: call.model, ...usage }) });
    },
    releaseIfUnpaid: async (db, error) => {
      if (nothingHeld()) return;
      if (classifyGeminiError(error).status !== undefined) await releaseSpend(db, key);
    },
  };
}
