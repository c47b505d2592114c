import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';

export const MAINTENANCE_SCHEDULE_ID = 'onceflow-maintenance';

export interface MaintenanceScheduleOptions {
  /** The operations' task queue (TEMPORAL_TASK_QUEUE); the reconciler starts lost operations there. */
  taskQueue: string;
  /** Default `onceflow-maintenance`; tests use their own. */
  scheduleId?: string;
  /** How often a pass runs. Default `1 minute`. */
  every?: Duration;
}

/**
 * Creates the schedule that runs maintenanceWorkflow (reconcile, then purge)
 * unless it exists: safe at every API start and from any number of replicas.
 * Purging lives in Temporal, not in a timer of one API process, so it runs
 * once per interval however many processes there are, and survives their restarts.
 */
export async function ensureMaintenanceSchedule(temporal: Client, options: MaintenanceScheduleOptions): Promise<'created' | 'exists'> {
  const scheduleId = options.scheduleId ?? MAINTENANCE_SCHEDULE_ID;
  try {
    await temporal.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: options.every ?? '1 minute' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'maintenanceWorkflow',
        workflowId: `${scheduleId}/pass`,
        taskQueue: options.taskQueue,
        args: [],
        // A pass stuck this long is abandoned; the next tick starts a fresh one.
        workflowExecutionTimeout: '10 minutes',
        staticSummary: 'Onceflow maintenance: start lost reservations, close abandoned runs, purge expired keys',
      },
      // A slow pass is never run twice at once (both would start the same lost
      // reservations); missed ticks during an outage are not caught up, the next one does it all.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { note: 'created by the Onceflow API at start; safe to pause, it is recreated only if deleted' },
    });
    return 'created';
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return 'exists';
    throw error;
  }
}
