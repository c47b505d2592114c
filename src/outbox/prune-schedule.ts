import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';

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
export async function ensureOutboxPruneSchedule(temporal: Client, options: OutboxPruneScheduleOptions): Promise<'created' | 'exists'> {
  const scheduleId = options.scheduleId ?? OUTBOX_PRUNE_SCHEDULE_ID;
  try {
    await temporal.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: options.every ?? '1 hour' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'pruneOutboxWorkflow',
        workflowId: `${scheduleId}/pass`,
        taskQueue: options.taskQueue,
        args: [],
        // A pass stuck this long is abandoned; the next tick starts a fresh one.
        workflowExecutionTimeout: '30 minutes',
        staticSummary: 'Onceflow: prune acknowledged outbox events and old inbox rows',
      },
      // Two passes at once would only contend for the same rows; missed ticks are not caught up.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { note: 'created by the Onceflow worker at start; safe to pause, it is recreated only if deleted' },
    });
    return 'created';
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return 'exists';
    throw error;
  }
}
