import { Counter, type Registry } from 'prom-client';
import { isFinal } from '../operations/status';
import type { DoorResult, EntryPoint } from './start-operation';

/**
 * The request outcome counter of the doors that are not HTTP, under the same
 * name as the facade's, with `entry_point` (schedule, queue) so one query sums
 * every way an operation was asked for. Lives in the process that opens the
 * door (the worker for schedule slots, the consumer for queue messages).
 */
export function createDoorMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: 'onceflow_idempotency_requests_total',
      help: 'Requests to start an operation by outcome and entry point (http, schedule, queue)',
      labelNames: ['tenant', 'operation_type', 'outcome', 'entry_point'] as const,
      registers: [registry],
    }),
  };
}
export type DoorMetrics = ReturnType<typeof createDoorMetrics>;

/** The outcome label of a door's result: the same values the HTTP facade counts. */
export function outcomeOf(result: DoorResult): string {
  switch (result.kind) {
    case 'started':
      return 'new';
    case 'existing':
      return isFinal(result.operation.status) ? 'replayed' : 'in_progress';
    case 'key-reused':
      return 'fingerprint_conflict';
    case 'invalid-key':
      return 'key_invalid';
    case 'key-missing':
      return 'key_missing';
    case 'invalid-input':
    case 'unknown-type':
      return 'invalid_request';
  }
}

export function countDoorResult(metrics: DoorMetrics | undefined, entryPoint: EntryPoint, tenantId: string, operationType: string, result: DoorResult): void {
  metrics?.requests.inc({ tenant: tenantId, operation_type: operationType, outcome: outcomeOf(result), entry_point: entryPoint });
}
