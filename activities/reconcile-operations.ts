import { Context } from '@temporalio/activity';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import { PostgresOperationsRepository } from '../src/operations/repository';
import type { Logger } from '../src/observability/logger';
import { createReservationResumer } from '../src/operations/resume';
import { createOperationStarter } from '../src/operations/starter';
import { OperationFailure } from '../workflows/failure-types';
import { createCompleteOperation } from './complete-operation';

export interface ReconcileOperationsInput {
  /** Task queue that un-started operations are started on: the maintenance workflow's own. */
  taskQueue: string;
  /** A `reserved` row untouched this long lost its start (facade died, Temporal down). Default 30 000 ms. */
  unstartedAfterMs?: number;
  /** A `running` row untouched this long has its run checked in Temporal. Default 600 000 ms (10 min). */
  checkRunningAfterMs?: number;
  /** Rows looked at per kind and pass. Default 100. */
  limit?: number;
}

export interface ReconcileOperationsResult {
  /** Reserved rows whose workflow this pass started (or attached to). */
  started: number;
  /** Reserved rows whose start failed again; the next pass retries them. */
  startFailures: number;
  /** Running (or expired reserved) rows whose run had ended without recording an outcome; now failed and released. */
  abandoned: number;
  /** Rows whose run is alive; touched so that the next pass looks at others first. */
  stillRunning: number;
}

/** The failure recorded for a run that ended without finishing its operation (terminated, timed out, lost). */
export const ABANDONED_ERROR_TYPE = OperationFailure.OperationAbandoned;

export interface ReconcileOperationsDeps {
  pool: pg.Pool;
  /** The operations repository; default one on `pool`. */
  operations?: PostgresOperationsRepository;
  logger: Logger;
  /** Default: the worker's own client (`Context.current().client`). */
  temporal?: Client;
  /** GEMINI_MODELS: the chain a lost operation's workflow is started with. */
  modelChain: readonly string[];
  /** Epoch ms; default Date.now. Tests move it forward instead of sleeping. */
  clock?: () => number;
}

/**
 * The self-healing pass, run by the maintenance schedule so that nothing stays
 * "running" forever even when no client ever asks again:
 *
 * 1. `reserved` rows whose start was never confirmed (the API process died, or
 *    Temporal refused, between reserving the key and starting the workflow) are
 *    started. Starting is idempotent (derived workflow ID, USE_EXISTING), so a
 *    start that did reach Temporal just attaches.
 * 2. `running` rows that are old, and expired rows never finished, have their run
 *    checked: a run that is closed (terminated, timed out by the retention-bound
 *    execution timeout, lost) without having recorded an outcome is finished as
 *    failed through the normal finishing phase (one operation.failed event,
 *    effect-guarded), releasing the key so a retry starts a new run.
 */
export function createReconcileOperations(deps: ReconcileOperationsDeps) {
  const store = deps.operations ?? new PostgresOperationsRepository(deps.pool);
  const completeOperation = createCompleteOperation(deps);
  const clock = deps.clock ?? Date.now;

  return async function reconcileOperations(input: ReconcileOperationsInput): Promise<ReconcileOperationsResult> {
    const temporal = deps.temporal ?? Context.current().client;
    const startOperation = createOperationStarter({ temporal, store, taskQueue: input.taskQueue, modelChain: deps.modelChain });
    // The same resumer a repeat request uses for a reservation it finds stale.
    const resumeReservation = createReservationResumer({ operations: store, startOperation, clock });
    const limit = input.limit ?? 100;
    const nowMs = clock();
    const result: ReconcileOperationsResult = { started: 0, startFailures: 0, abandoned: 0, stillRunning: 0 };

    // States only: each row's input is read by the resumer, one at a time, never a page of request bodies.
    const unstarted = await store.findUnstarted({ olderThanMs: nowMs - (input.unstartedAfterMs ?? 30_000), limit });
    for (const record of unstarted) {
      try {
        if ((await resumeReservation(record.operationId)) === 'started') result.started++;
      } catch (error) {
        result.startFailures++;
        deps.logger.warn({ err: (error as Error).message, workflowId: record.workflowId }, 'reconciler could not start an operation; next pass retries');
      }
    }

    const toCheck = await store.findToCheck({ runningBeforeMs: nowMs - (input.checkRunningAfterMs ?? 600_000), nowMs, limit });
    for (const row of toCheck) {
      const state = await runState(temporal, row.workflowId, row.runId);
      if (state === 'RUNNING') {
        result.stillRunning++;
        await store.touch(row.operationId);
        continue;
      }
      // If the run finished its operation a moment ago, the effect guard in
      // completeOperation returns that stored outcome: nothing is written twice.
      await completeOperation({
        operationId: row.operationId,
        tenantId: row.tenantId,
        operationType: row.operationType,
        idempotencyKey: row.idempotencyKey,
        workflowId: row.workflowId,
        outcome: 'failed',
        error: {
          type: ABANDONED_ERROR_TYPE,
          detail: `its workflow run ended (${state}) without recording a result; a retry with the same Idempotency-Key starts a new run`,
          retryable: true,
        },
      });
      result.abandoned++;
      deps.logger.warn({ workflowId: row.workflowId, runId: row.runId, state }, 'operation abandoned by its run; failed and released');
    }
    return result;
  };
}

/** The run's status name (RUNNING, TERMINATED, TIMED_OUT, …), or NOT_FOUND when Temporal has no such run. */
async function runState(temporal: Client, workflowId: string, runId: string | null): Promise<string> {
  try {
    const description = await temporal.workflow.getHandle(workflowId, runId ?? undefined).describe();
    return description.status.name;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return 'NOT_FOUND';
    throw error;
  }
}
