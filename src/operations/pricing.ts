import type { OperationUsage } from '../../workflows/operation-outcome';
import { ConfigError } from '../config';

/**
 * List prices in micro-USD per million tokens, for the usage ledger's cost
 * estimate, spend caps and metrics. Every model of GEMINI_ALLOWED_MODELS must
 * be here (the worker checks at start: assertModelsPriced). Estimates, not
 * invoices: Gemini's console is the source of truth.
 */
const pricePerMillionTokens: Record<string, { input: number; output: number }> = {
  'gemini-2.5-pro': { input: 1_250_000, output: 10_000_000 },
  'gemini-2.5-flash': { input: 300_000, output: 2_500_000 },
  'gemini-2.5-flash-lite': { input: 100_000, output: 400_000 },
};
/** For a model Gemini reports that is not in the table (an answer's modelVersion): the flash price. */
const fallbackPrice = { input: 300_000, output: 2_500_000 };

/**
 * The largest answer a call may produce when the request sets no
 * maxOutputTokens (Gemini 2.5's output limit, thinking included): what a
 * spend cap must reserve for it.
 */
export const MAX_OUTPUT_TOKENS = 65_536;

export function estimateCostMicros(usage: Pick<OperationUsage, 'model' | 'promptTokens' | 'outputTokens'>): number {
  const price = pricePerMillionTokens[usage.model] ?? fallbackPrice;
  return Math.round((usage.promptTokens * price.input + usage.outputTokens * price.output) / 1_000_000);
}

/**
 * The most a call can cost, reserved against a spend cap before it is made:
 * no text token is shorter than one UTF-8 byte, so the prompt's bytes bound
 * its tokens, and maxOutputTokens (default MAX_OUTPUT_TOKENS) bounds the answer.
 */
export function worstCaseCostMicros(call: { model: string; promptText: string; maxOutputTokens?: number }): number {
  const price = pricePerMillionTokens[call.model];
  if (!price) throw new Error(`no price for model ${call.model}`);
  const promptTokens = Buffer.byteLength(call.promptText, 'utf8');
  return Math.ceil((promptTokens * price.input + (call.maxOutputTokens ?? MAX_OUTPUT_TOKENS) * price.output) / 1_000_000);
}

/** Refuses a configuration that allows a model without a price: its spend could be neither capped nor counted. */
export function assertModelsPriced(allowedModels: readonly string[]): void {
  const unpriced = allowedModels.filter((model) => !Object.hasOwn(pricePerMillionTokens, model));
  if (unpriced.length > 0) {
    throw new ConfigError([{
      variable: 'GEMINI_ALLOWED_MODELS',
      message: `no price for ${unpriced.join(', ')} in src/operations/pricing.ts (priced: ${Object.keys(pricePerMillionTokens).join(', ')})`,
    }]);
  }
}
