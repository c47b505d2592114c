import type { OperationUsage } from '../../workflows/operation-outcome';

/**
 * List prices in micro-USD per million tokens, for the usage ledger's cost
 * estimate and metrics. Unknown models fall back to the flash price.
 * Estimates, not invoices: Gemini's console is the source of truth.
 */
const pricePerMillionTokens: Record<string, { input: number; output: number }> = {
  'gemini-2.5-pro': { input: 1_250_000, output: 10_000_000 },
  'gemini-2.5-flash': { input: 300_000, output: 2_500_000 },
  'gemini-2.5-flash-lite': { input: 100_000, output: 400_000 },
};
const fallbackPrice = { input: 300_000, output: 2_500_000 };

export function estimateCostMicros(usage: Pick<OperationUsage, 'model' | 'promptTokens' | 'outputTokens'>): number {
  const price = pricePerMillionTokens[usage.model] ?? fallbackPrice;
  return Math.round((usage.promptTokens * price.input + usage.outputTokens * price.output) / 1_000_000);
}
