import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PostgresOperationsRepository } from '../operations/repository';

/** Outcomes of POST /v1/operations/{type}, one label value each. */
export const RequestOutcome = {
  New: 'new',
  Replayed: 'replayed',
  InProgress: 'in_progress',
  FingerprintConflict: 'fingerprint_conflict',
  KeyMissing: 'key_missing',
  KeyInvalid: 'key_invalid',
  InvalidRequest: 'invalid_request',
  RateLimited: 'rate_limited',
  Unavailable: 'unavailable',
  Error: 'error',
} as const;
export type RequestOutcome = (typeof RequestOutcome)[keyof typeof RequestOutcome];

export function createHttpMetrics(registry: Registry, operations: Pick<PostgresOperationsRepository, 'oldestUnfinishedAgeSeconds'>) {
  return {
    requests: new Counter({
      name: 'onceflow_idempotency_requests_total',
      help: 'Requests to start an operation by outcome and entry point (http here; schedule and queue in the worker and the consumer)',
      labelNames: ['tenant', 'operation_type', 'outcome', 'entry_point'] as const,
      registers: [registry],
    }),
    duplicatesAbsorbed: new Counter({
      name: 'onceflow_duplicates_absorbed_total',
      help: 'Repeats answered without starting work (replayed, in progress, or waited on)',
      labelNames: ['tenant', 'operation_type'] as const,
      registers: [registry],
    }),
    storeErrors: new Counter({
      name: 'onceflow_idempotency_store_errors_total',
      help: 'Idempotency store operations that failed (PostgreSQL unreachable or erroring)',
      labelNames: ['operation'] as const,
      registers: [registry],
    }),
    workflowStartErrors: new Counter({
      name: 'onceflow_workflow_start_errors_total',
      help: 'Workflow starts Temporal did not accept (the key stays reserved and is retried)',
      registers: [registry],
    }),
    reservationSeconds: new Histogram({
      name: 'onceflow_reservation_duration_seconds',
      help: 'Time to reserve an idempotency key (one INSERT … ON CONFLICT)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    oldestRunningAge: new Gauge({
      name: 'onceflow_operations_oldest_running_age_seconds',
      help: 'Age of the oldest operation still running (0 when none), read at scrape time',
      registers: [registry],
      async collect() {
        try {
          this.set(await operations.oldestUnfinishedAgeSeconds());
        } catch {
          // leave the last value; a scrape must not fail because the database did
        }
      },
    }),
  };
}

export type HttpMetrics = ReturnType<typeof createHttpMetrics>;
