/**
 * The cancel use case (contract v1.1, POST /v1/operations/{type}/{key}/cancel).
 * Answers with a discriminated union and knows nothing of HTTP;
 * src/http/routes/operations.ts maps it to the wire.
 */
import type { CancelRun } from './canceller';
import type { KeyScope, OperationState, PostgresOperationsRepository } from './repository';
import type { ResumeReservation } from './resume';
import { isFinal } from './status';

export type CancelResult =
  /** Unknown, expired, or another tenant's key. */
  | { kind: 'notFound' }
  /** Already succeeded, failed or canceled: nothing is done (again). */
  | { kind: 'final'; record: OperationState }
  /** The run was asked to stop; it finishes the operation as canceled on its own. */
  | { kind: 'requested'; record: OperationState };

export interface CancelOperationDeps {
  operations: Pick<PostgresOperationsRepository, 'find' | 'findStateById'>;
  cancelRun: CancelRun;
  resumeReservation: ResumeReservation;
  /** Epoch ms. */
  clock: () => number;
}

export function createCancelOperation(deps: CancelOperationDeps) {
  return async function cancel(scope: KeyScope): Promise<CancelResult> {
    const found = await deps.operations.find(scope);
    if (!found || found.expiresAt.getTime() <= deps.clock()) return { kind: 'notFound' };
    if (isFinal(found.status)) return { kind: 'final', record: found };

    let record = found;
    if (record.runId === null) {
      // A reservation whose start was never confirmed has no run to cancel.
      // It is started first (idempotent: derived workflow id, USE_EXISTING),
      // so that cancelling it takes the one path every run takes: the run
      // meets the cancel at its first step and finishes the operation as
      // canceled (one event, one bill). Ending the row here instead would
      // race the first request's own start.
      await deps.resumeReservation(record.operationId);
      record = (await deps.operations.findStateById(record.operationId)) ?? record;
      if (isFinal(record.status)) return { kind: 'final', record };
      if (record.runId === null) return { kind: 'requested', record };
    }
    const run = await deps.cancelRun({ workflowId: record.workflowId, runId: record.runId! });
    if (run === 'closed') {
      // The run ended between the read and the request: it has written its
      // outcome (or the reconciler will, for a run that ended without one).
      const current = await deps.operations.findStateById(record.operationId);
      if (current && isFinal(current.status)) return { kind: 'final', record: current };
    }
    return { kind: 'requested', record };
  };
}

export type CancelOperation = ReturnType<typeof createCancelOperation>;
