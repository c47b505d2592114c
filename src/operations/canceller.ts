import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { AppError, messageOf } from '../errors';

/**
 * Thrown when Temporal did not take a cancel request (unreachable, deadline
 * passed). Nothing changed; the facade answers 503 and a retry is safe.
 */
export class WorkflowCancelError extends AppError<{ workflowId: string }> {
  override readonly name = 'WorkflowCancelError';
  readonly workflowId: string;
  constructor(workflowId: string, options: { cause: unknown }) {
    super(`could not request cancellation of workflow ${workflowId}: ${messageOf(options.cause)}`, { context: { workflowId }, cause: options.cause });
    this.workflowId = workflowId;
  }
}

export interface RunCancellerOptions {
  temporal: Client;
  /** How long a cancel request may take before the facade answers 503; default 5000 ms. */
  requestTimeoutMs?: number;
}

/**
 * Requests Temporal's cancellation of one run (the workflow's root scope is
 * cancelled: it stops at its next step and finishes its operation as
 * canceled). Temporal records one cancel request per run however many
 * arrive, so repeating it is harmless. `closed` when the run had already
 * closed: there is nothing left to stop.
 */
export function createRunCanceller(options: RunCancellerOptions) {
  return async function cancelRun(run: { workflowId: string; runId: string }): Promise<'requested' | 'closed'> {
    try {
      await options.temporal.connection.withDeadline(Date.now() + (options.requestTimeoutMs ?? 5_000), () =>
        options.temporal.workflow.getHandle(run.workflowId, run.runId).cancel(),
      );
      return 'requested';
    } catch (cause) {
      if (cause instanceof WorkflowNotFoundError) return 'closed';
      throw new WorkflowCancelError(run.workflowId, { cause });
    }
  };
}

export type CancelRun = ReturnType<typeof createRunCanceller>;
