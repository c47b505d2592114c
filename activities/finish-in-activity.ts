import type { Logger } from '../src/observability/logger';
import type { OperationOutcome } from '../workflows/operation-outcome';
import type { CompleteOperationInput } from './complete-operation';

/** What an activity that may finish its operation gets from its workflow. */
export interface FinishingInput {
  operationId: string;
  workflowId: string;
  tenantId?: string;
  operationType?: string;
  /** Set by runs that let this activity finish a success; runs recorded before it did not send it, and finish in their workflow. */
  finishOnSuccess?: { idempotencyKey: string };
}

export interface FinishingDeps {
  /** The finishing phase (activities/complete-operation.ts). */
  completeOperation?: (input: CompleteOperationInput) => Promise<unknown>;
  logger?: Logger;
}

/**
 * Finishes a success inside the activity that learned it (the paid call, or
 * the poll that read a report's end), so the run needs no finishing local
 * activity. The guarantees are completeOperation's own: one transaction under
 * the effect guard (operationId, 'complete'); a worker that dies after its
 * COMMIT runs the activity again and the guard returns the stored finish (no
 * second bill or event). Best effort: when the run did not ask, the attempt
 * was cancelled meanwhile, or finishing fails (PostgreSQL away), it returns
 * false and the workflow finishes (or cancels) as before; failing the
 * activity instead would cost a retry of it. True when the operation is finished.
 */
export async function finishInActivity(
  deps: FinishingDeps,
  input: FinishingInput,
  outcome: () => OperationOutcome & { outcome: 'succeeded' },
  signal: AbortSignal,
  log: Record<string, unknown> = {},
): Promise<boolean> {
  const { finishOnSuccess, tenantId, operationType } = input;
  // Runs that send finishOnSuccess always send their owner too.
  if (!finishOnSuccess || !tenantId || !operationType || !deps.completeOperation || signal.aborted) return false;
  try {
    await deps.completeOperation({
      operationId: input.operationId,
      tenantId,
      operationType,
      idempotencyKey: finishOnSuccess.idempotencyKey,
      workflowId: input.workflowId,
      ...outcome(),
    });
    return true;
  } catch (error) {
    deps.logger?.warn({ correlationId: input.operationId, workflowId: input.workflowId, ...log, err: (error as Error).message }, 'finishing in the activity failed; the workflow finishes the operation');
    return false;
  }
}
