import type { Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { ensureHousekeepingSchedule } from '../temporal/housekeeping-schedule';

export const OUTBOX_PRUNE_SCHEDULE_ID = 'onceflow-outbox-prune';

export interface OutboxPruneScheduleOptions {
  /** The worker's task queue (TEMPORAL_TASK_QUEUE), where pruneOutboxWorkflow runs. */
  taskQueue: string;
  /** Default `onceflow-outbox-prune`; tests use their own. */
  scheduleId?: string;
  /** How often a pass runs. Default `1 hour`. */
  every?: Duration;
}

/**
 * Creates the schedule that runs pruneOutboxWorkflow unless it exists: safe at
 * every worker start and from any number of workers. The retention is not in
 * the schedule but in each worker's configuration (OUTBOX_RETENTION_DAYS), so
 * changing it takes effect at the next worker start without touching the schedule.
 */
export function ensureOutboxPruneSchedule(temporal: Client, options: OutboxPruneScheduleOptions): Promise<'created' | 'exists'> {
  return ensureHousekeepingSchedule(temporal, {
    scheduleId: options.scheduleId ?? OUTBOX_PRUNE_SCHEDULE_ID,
    workflowType: 'pruneOutboxWorkflow',
    taskQueue: options.taskQueue,
    every: options.every ?? '1 hour',
    passTimeout: '30 minutes',
    summary: 'Onceflow: prune acknowledged outbox events and old inbox rows',
    createdBy: 'worker',
  });
}
