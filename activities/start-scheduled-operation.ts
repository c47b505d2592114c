import { Context } from '@temporalio/activity';
import { ApplicationFailure, type Client } from '@temporalio/client';
import type pg from 'pg';
import type { ScheduledSlotInput } from '../workflows/scheduled-slot.workflow';
import { FailureType } from '../workflows/failure-types';
import { countDoorResult, type DoorMetrics } from '../src/doors/metrics';
import { createDoorDeps, EntryPoint, startOperationFromDoor } from '../src/doors/start-operation';
import type { Logger } from '../src/observability/logger';
import { PostgresOperationsRepository } from '../src/operations/repository';
import { scheduleSlotKey, scheduleSlotKeyPrefix } from '../src/schedules/slot-key';

export interface StartScheduledOperationDeps {
  pool: pg.Pool;
  logger: Logger;
  /** Default: the worker's own client (`Context.current().client`). */
  temporal?: Client;
  /** GEMINI_MODELS: the chain each slot's operation runs with. */
  modelChain: readonly string[];
  /** ONCEFLOW_DEFAULT_RETENTION_HOURS; default 24. */
  defaultRetentionHours?: number;
  /** Counts each slot's outcome with entry_point=schedule; default none. */
  doorMetrics?: DoorMetrics;
}

export interface StartScheduledOperationResult {
  idempotencyKey: string;
  operationId: string;
  workflowId: string;
  /** `started` the first time this slot ran; `existing` when another run of the slot had already started it. */
  outcome: 'started' | 'existing';
}

/** The slot started nothing: its schedule's overlap is `skip` and an earlier slot's operation had not finished. */
export interface SkippedScheduledSlot {
  idempotencyKey: string;
  outcome: 'skipped';
}

/** Thrown (retryable) while a `buffer_*` slot waits for the earlier slots' operations; the activity's retry policy paces the wait. */
export const EARLIER_SLOT_UNFINISHED = 'EarlierSlotUnfinished';

/**
 * Reserves and starts the operation of one schedule slot, on this activity's
 * own task queue (the operations' queue). If the worker dies after the
 * reservation, the retry (or the reconciler) starts the reserved row: the key
 * is the same, so no second operation is possible.
 */
export function createStartScheduledOperation(deps: StartScheduledOperationDeps) {
  const operations = new PostgresOperationsRepository(deps.pool);
  /** Whether an earlier slot of this schedule still has an unfinished operation (the overlap the tenant's policy is about). */
  const earlierSlotUnfinished = async (slot: ScheduledSlotInput, key: string) => {
    const scope = { tenantId: slot.tenantId, operationType: slot.operationType, idempotencyKey: key };
    // A repeat of a slot that already has its operation is that operation, whatever runs beside it.
    if (await operations.find(scope)) return false;
    return operations.hasUnfinishedBefore({ tenantId: slot.tenantId, operationType: slot.operationType, keyPrefix: scheduleSlotKeyPrefix(slot.scheduleId), beforeKey: key });
  };
  return async function startScheduledOperation(slot: ScheduledSlotInput & { nominalTimeMs: number }): Promise<StartScheduledOperationResult | SkippedScheduledSlot> {
    const context = Context.current();
    const key = scheduleSlotKey(slot.scheduleId, slot.nominalTimeMs);
    const overlap = slot.overlap ?? 'allow_all';
    if (overlap !== 'allow_all' && (await earlierSlotUnfinished(slot, key))) {
      if (overlap === 'skip') {
        deps.doorMetrics?.requests.inc({ tenant: slot.tenantId, operation_type: slot.operationType, outcome: 'skipped', entry_point: EntryPoint.Schedule });
        deps.logger.info({ tenant: slot.tenantId, scheduleId: slot.scheduleId, idempotencyKey: key, outcome: 'skipped' }, 'schedule slot: skipped (an earlier slot is still running)');
        return { idempotencyKey: key, outcome: 'skipped' };
      }
      throw ApplicationFailure.create({ type: EARLIER_SLOT_UNFINISHED, message: `schedule ${slot.scheduleId} slot ${key} waits for an earlier slot's operation (overlap ${overlap})` });
    }
    const door = createDoorDeps({
      pool: deps.pool,
      temporal: deps.temporal ?? context.client,
      taskQueue: context.info.taskQueue,
      modelChain: deps.modelChain,
      // The input was validated when the schedule was created.
      allowedModels: [],
      defaultRetentionHours: deps.defaultRetentionHours ?? 24,
    });
    const result = await startOperationFromDoor(
      door,
      { tenantId: slot.tenantId, type: slot.operationType, key, input: slot.input, entryPoint: EntryPoint.Schedule },
    );
    countDoorResult(deps.doorMetrics, EntryPoint.Schedule, slot.tenantId, slot.operationType, result);
    if (result.kind === 'started' || result.kind === 'existing') {
      deps.logger.info(
        { correlationId: result.operation.operationId, tenant: slot.tenantId, scheduleId: slot.scheduleId, idempotencyKey: key, outcome: result.kind },
        `schedule slot: ${result.kind}`,
      );
      return { idempotencyKey: key, operationId: result.operation.operationId, workflowId: result.operation.workflowId, outcome: result.kind };
    }
    // The schedule's input was validated when it was created; reaching this
    // means the type changed under it. Retrying cannot help.
    throw ApplicationFailure.create({ type: FailureType.InvalidState, nonRetryable: true, message: `schedule ${slot.scheduleId} slot ${key}: ${result.kind}`, details: [result] });
  };
}
