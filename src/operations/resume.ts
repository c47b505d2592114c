import type { PostgresOperationsRepository } from './repository';
import type { StartOperation } from './starter';
import { OperationStatus } from './status';

export type ResumeOutcome = 'started' | 'not-reserved' | 'expired';

/**
 * Starts the run of a reservation whose start was never confirmed (the API
 * process died, or Temporal refused, between reserving the key and starting
 * the workflow). The one way both a repeat request and the reconciler do it:
 * the row is read again with its input (the repeat path reads none), and only
 * a row still `reserved` and not expired is started. Starting is idempotent
 * (derived workflow id, USE_EXISTING), so a start that did reach Temporal
 * just attaches.
 */
export function createReservationResumer(deps: {
  operations: Pick<PostgresOperationsRepository, 'findById'>;
  startOperation: StartOperation;
  /** Epoch ms. */
  clock: () => number;
}) {
  return async function resumeReservation(operationId: string): Promise<ResumeOutcome> {
    const record = await deps.operations.findById(operationId);
    if (record?.status !== OperationStatus.Reserved) return 'not-reserved';
    // An expired reservation is not worth starting; the reconciler closes it.
    if (record.expiresAt.getTime() <= deps.clock()) return 'expired';
    await deps.startOperation(record);
    return 'started';
  };
}

export type ResumeReservation = ReturnType<typeof createReservationResumer>;
