/**
 * What the Gemini activities call to keep a paid call inside its tenant's
 * spend caps: the guard's `admit` hook (reserve the worst case), the settle
 * of the actual cost when the answer is stored, the release when Gemini
 * answered with an error. A refused call's activity failure is the Gemini
 * edge's (toGeminiCallFailure, src/integrations/gemini/errors.ts).
 */
import type pg from 'pg';
import type { Queryable } from '../db/pool';
import { classifyGeminiError } from '../integrations/gemini/errors';
import { estimateCostMicros, worstCaseCostMicros } from '../operations/pricing';
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
