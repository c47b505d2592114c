/**
 * What an operator sees of one Gemini activity attempt: its counters
 * (src/integrations/gemini/metrics.ts) and its log lines, written in one place
 * so the activities only say what happened. Log lines carry correlation
 * fields, never the prompt or the answer.
 */
import type { Logger } from '../../observability/logger';
import { estimateCostMicros } from '../../operations/pricing';
import type { GeminiCallFailure } from './errors';
import { ownerLabels, reportIfCredentialsRejected, type GeminiCallOwner, type GeminiMetrics } from './metrics';

export interface CallReportContext extends GeminiCallOwner {
  metrics: GeminiMetrics;
  logger?: Logger;
  model: string;
  /** The previous model of the chain when this call is a fallback. */
  fallbackFrom?: string;
  /** Correlation fields of every line (operation, workflow, run, model, attempt). */
  log: Record<string, unknown>;
}

export type CallReport = ReturnType<typeof callReport>;

export function callReport(context: CallReportContext) {
  const owner = ownerLabels(context);
  const { metrics, logger, model } = context;
  return {
    /** Counted as the call leaves: a retry of this step, or the first call of a fallback model. */
    leaving(retry: boolean): void {
      if (retry) metrics.retries.inc({ model, operation_type: owner.operation_type });
      else if (context.fallbackFrom) metrics.fallbacks.inc({ from_model: context.fallbackFrom, to_model: model, operation_type: owner.operation_type });
    },
    /** The stored answer of an earlier attempt was reused: nothing was called. */
    avoided(fields: Record<string, unknown>, message: string): void {
      metrics.callsAvoided.inc({ model, ...owner });
      logger?.info({ ...context.log, ...fields }, message);
    },
    /** A call that succeeded and was paid for. */
    paid(fields: Record<string, unknown>, message: string): void {
      metrics.calls.inc({ model, outcome: 'succeeded', ...owner });
      logger?.info({ ...context.log, outcome: 'succeeded', ...fields }, message);
    },
    /** Tokens and estimated cost of one paid answer (of `model`, or of the model the answer names). */
    tokens(usage: { promptTokens: number; outputTokens: number }, answeredBy = model): void {
      const labels = { model: answeredBy, ...owner };
      metrics.tokens.inc({ ...labels, kind: 'prompt' }, usage.promptTokens);
      metrics.tokens.inc({ ...labels, kind: 'output' }, usage.outputTokens);
      metrics.costMicros.inc(labels, estimateCostMicros({ model: answeredBy, ...usage }));
    },
    /** A failed attempt, as toGeminiCallFailure read it. */
    failed(failure: GeminiCallFailure, durationMs: number): void {
      switch (failure.kind) {
        case 'cancelled':
          return;
        case 'refused':
          metrics.budgetRefusals.inc({ ...owner, period: failure.refusal.period });
          logger?.info({ ...context.log, period: failure.refusal.period, limitMicroUsd: failure.refusal.limitMicroUsd, estimateMicroUsd: failure.refusal.estimateMicroUsd }, 'paid call refused: spend cap reached');
          return;
        case 'database':
          if (failure.paid) {
            // The call was made and paid for; its answer could not be stored, so the retry pays again.
            metrics.calls.inc({ model, outcome: 'succeeded', ...owner });
            logger?.error({ ...context.log, err: failure.failure.message }, 'gemini answered but the answer could not be stored; the retry calls again');
          }
          return;
        case 'gemini':
          reportIfCredentialsRejected(metrics, failure.classified, { logger, log: context.log });
          metrics.calls.inc({ model, outcome: failure.outcome, ...owner });
          logger?.warn({ ...context.log, outcome: failure.outcome, durationMs, error: failure.classified.message }, 'gemini call failed');
      }
    },
  };
}
