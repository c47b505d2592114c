import { Counter, type Registry } from 'prom-client';

export function createGeminiMetrics(registry: Registry) {
  return {
    calls: new Counter({
      name: 'onceflow_gemini_calls_total',
      help: 'Gemini calls made (each one may be paid for), by model and outcome',
      labelNames: ['model', 'outcome'] as const,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'onceflow_gemini_tokens_total',
      help: 'Tokens of successful Gemini calls, by model and kind (prompt, output)',
      labelNames: ['model', 'kind'] as const,
      registers: [registry],
    }),
    costMicros: new Counter({
      name: 'onceflow_gemini_estimated_cost_micro_usd_total',
      help: 'Estimated cost of successful Gemini calls in micro-USD (list prices; an estimate, not an invoice)',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'onceflow_gemini_retries_total',
      help: 'Gemini activity attempts after the first, by model',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'onceflow_gemini_fallbacks_total',
      help: 'Times the next model of the chain was tried after one exhausted its retries',
      labelNames: ['from_model', 'to_model'] as const,
      registers: [registry],
    }),
    callsAvoided: new Counter({
      name: 'onceflow_gemini_calls_avoided_total',
      help: 'Gemini calls not made because the paid-call guard found the stored response',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
  };
}

export type GeminiMetrics = ReturnType<typeof createGeminiMetrics>;
