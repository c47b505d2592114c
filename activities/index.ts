/**
 * createActivities(deps): the only place activities are assembled. Every
 * activity is built from small injected dependencies; nothing is a module-level singleton.
 */
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { GeminiClient } from '../src/integrations/gemini/client';
import type { GeminiMetrics } from '../src/integrations/gemini/metrics';
import type { Logger } from '../src/observability/logger';
import { createCancelInteraction } from './cancel-interaction';
import { createCompleteOperation } from './complete-operation';
import { createPurgeExpiredOperations } from './purge-expired-operations';
import { createPruneOutbox } from './prune-outbox';
import { createReconcileOperations } from './reconcile-operations';
import { createStartScheduledOperation } from './start-scheduled-operation';
import type { DoorMetrics } from '../src/doors/metrics';
import { PostgresOperationsRepository } from '../src/operations/repository';
import { createGenerateWithGemini, createListGeminiAttempts, createResolveModelChain } from './gemini-generate';
import { createPollInteraction, createReportSettings, createSubmitInteraction, type ReportPolling } from './gemini-interactions';

export interface ActivityDeps {
  pool: pg.Pool;
  logger: Logger;
  /** Temporal client of the reconciler (starts lost operations, checks runs). Default: the worker's own, from the activity Context. */
  temporal?: Client;
  gemini: GeminiClient;
  geminiMetrics: GeminiMetrics;
  /** GEMINI_MODELS: the fallback chain, primary first. */
  modelChain: readonly string[];
  /** OUTBOX_RETENTION_DAYS: how long pruneOutbox keeps acknowledged outbox events and inbox rows. Default 7. */
  outboxRetentionDays?: number;
  /** OUTBOX_PAUSED_RETENTION_DAYS: how long pruneOutbox keeps the deliveries of a subscription paused by a 410. Default 7. */
  pausedRetentionDays?: number;
  /** ONCEFLOW_SPEND_RETENTION_DAYS: how long the maintenance pass keeps spend records that no longer count. Default 7. */
  spendRetentionDays?: number;
  /** ONCEFLOW_BILL_DETAIL_MONTHS: after how many months the maintenance pass rolls bills up into monthly summaries. Default 13. */
  billDetailMonths?: number;
  /** How generate-report waits between polls; default DEFAULT_REPORT_POLLING (activities/gemini-interactions.ts). */
  reportPolling?: Partial<ReportPolling>;
  /** ONCEFLOW_DEFAULT_RETENTION_HOURS, for the operations schedule slots start. Default 24. */
  defaultRetentionHours?: number;
  /** Outcome of each schedule slot (entry_point=schedule); default none. */
  doorMetrics?: DoorMetrics;
  /** The operations repository every activity shares; default one on `pool`. */
  operations?: PostgresOperationsRepository;
}

export function createActivities(options: ActivityDeps) {
  const operations = options.operations ?? new PostgresOperationsRepository(options.pool);
  const completeOperation = createCompleteOperation({ ...options, operations });
  const deps = { ...options, operations, completeOperation };
  return {
    completeOperation,
    reconcileOperations: createReconcileOperations(deps),
    purgeExpiredOperations: createPurgeExpiredOperations(deps),
    pruneOutbox: createPruneOutbox(deps),
    generateWithGemini: createGenerateWithGemini(deps),
    listGeminiAttempts: createListGeminiAttempts(deps),
    resolveModelChain: createResolveModelChain(deps),
    submitInteraction: createSubmitInteraction(deps),
    pollInteraction: createPollInteraction(deps),
    reportSettings: createReportSettings(deps),
    cancelInteraction: createCancelInteraction(deps),
    startScheduledOperation: createStartScheduledOperation(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
