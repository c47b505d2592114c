import { Counter, type Registry } from 'prom-client';

/**
 * Gemini metrics of a worker. Money (calls, tokens, estimated cost, calls
 * avoided) is labelled by `tenant` and `operation_type`, so cost per tenant
 * and per operation type is one query; reliability signals (retries,
 * fallbacks) are per model and operation type only. One series per tenant is
 * fine for the tenants an operator provisions; it is not a per-request label.
 */
export function createGeminiMetrics(registry: Registry, options: GeminiMetricsOptions = {}) {
  const metrics = {
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
    budgetRefusals: new Counter({
      name: 'onceflow_budget_refused_calls_total',
      help: 'Paid Gemini calls not made because they would have passed a tenant spend cap, by tenant, operation type and period',
      labelNames: ['tenant', 'operation_type', 'period'] as const,
      registers: [registry],
    }),
    credentialErrors: new Counter({
      name: 'onceflow_gemini_credential_errors_total',
      help: "Gemini calls refused because of the deployment's own API key (401, 403, an invalid or expired key): an operator must act; tenants see the service unavailable",
      labelNames: ['status'] as const,
      registers: [registry],
    }),
  };
  if (options.allowedModels) {
    const allowed = new Set(options.allowedModels);
    for (const counter of Object.values(metrics)) onlyAllowedModels(counter as Counter<string>, allowed);
  }
  return metrics;
}

/**
 * The operator's signal that Gemini refused the deployment's own key: a
 * counter to alert on and an error line. Tenants only see the service unavailable.
 */
export function reportCredentialsRejected(
  metrics: GeminiMetrics,
  failure: { status?: number; message: string },
  context: { logger?: { error(fields: object, message: string): void }; log: object },
): void {
  metrics.credentialErrors.inc({ status: String(failure.status ?? 'unknown') });
  context.logger?.error({ ...context.log, status: failure.status, error: failure.message }, 'Gemini refused the deployment API key (GEMINI_API_KEY): every paid call fails until an operator fixes it');
}

export interface GeminiMetricsOptions {
  /**
   * GEMINI_ALLOWED_MODELS. Set: a model label outside it (a run started before
   * the list changed) reads `other`, so no request can mint series. Default: labels as given.
   */
  allowedModels?: readonly string[];
}

const MODEL_LABELS = ['model', 'from_model', 'to_model'];

function onlyAllowedModels(counter: Counter<string>, allowed: ReadonlySet<string>): void {
  const inc = counter.inc.bind(counter) as (labels?: Record<string, string | number> | number, value?: number) => void;
  counter.inc = ((labels?: Record<string, string | number> | number, value?: number) => {
    if (typeof labels !== 'object') return inc(labels);
    const safe = { ...labels };
    for (const name of MODEL_LABELS) {
      if (name in safe && !allowed.has(String(safe[name]))) safe[name] = 'other';
    }
    return inc(safe, value);
  }) as Counter<string>['inc'];
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
