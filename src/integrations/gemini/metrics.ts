import { Counter, type Registry } from 'prom-client';

/**
 * Gemini metrics of a worker. Money (calls, tokens, estimated cost, calls
 * avoided) is labelled by `tenant` and `operation_type`, so cost per tenant
 * and per operation type is one query; reliability signals (retries,
 * fallbacks) are per model and operation type only. One series per tenant is
 * fine for the tenants an operator provisions; it is not a per-request label.
 */
export function createGeminiMetrics(registry: Registry) {
  return {
    calls: new Counter({
      name: 'onceflow_gemini_calls_total',
      help: 'Gemini calls made (each one may be paid for), by model, outcome, tenant and operation type',
      labelNames: ['model', 'outcome', 'tenant', 'operation_type'] as const,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'onceflow_gemini_tokens_total',
      help: 'Tokens of successful paid Gemini calls (a generated answer, a completed report), by model, kind (prompt, output), tenant and operation type',
      labelNames: ['model', 'kind', 'tenant', 'operation_type'] as const,
      registers: [registry],
    }),
    costMicros: new Counter({
      name: 'onceflow_gemini_estimated_cost_micro_usd_total',
      help: 'Estimated cost of successful paid Gemini calls in micro-USD (list prices; an estimate, not an invoice), by model, tenant and operation type',
      labelNames: ['model', 'tenant', 'operation_type'] as const,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'onceflow_gemini_retries_total',
      help: 'Gemini calls that repeat an earlier call of the same step (the same operation and model), by model and operation type',
      labelNames: ['model', 'operation_type'] as const,
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'onceflow_gemini_fallbacks_total',
      help: 'Times the next model of the chain was called after the previous one failed for good, by operation type',
      labelNames: ['from_model', 'to_model', 'operation_type'] as const,
      registers: [registry],
    }),
    callsAvoided: new Counter({
      name: 'onceflow_gemini_calls_avoided_total',
      help: 'Gemini calls not made because the paid-call guard found the stored answer, by model, tenant and operation type',
      labelNames: ['model', 'tenant', 'operation_type'] as const,
      registers: [registry],
    }),
  };
}

export type GeminiMetrics = ReturnType<typeof createGeminiMetrics>;

/** Who a call is made for; absent on activities scheduled before these labels existed. */
export interface GeminiCallOwner {
  tenantId?: string;
  operationType?: string;
}

/** The `tenant` and `operation_type` labels of a call (`unknown` when its activity predates them). */
export function ownerLabels(owner: GeminiCallOwner): { tenant: string; operation_type: string } {
  return { tenant: owner.tenantId ?? 'unknown', operation_type: owner.operationType ?? 'unknown' };
}
