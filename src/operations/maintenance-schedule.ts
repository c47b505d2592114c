import type { Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { ensureHousekeepingSchedule } from '../temporal/housekeeping-schedule';

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
 * Passes never overlap: two at once would start the same lost reservations.
 */
export function ensureMaintenanceSchedule(temporal: Client, options: MaintenanceScheduleOptions): Promise<'created' | 'exists'> {
  return ensureHousekeepingSchedule(temporal, {
    scheduleId: options.scheduleId ?? MAINTENANCE_SCHEDULE_ID,
    workflowType: 'maintenanceWorkflow',
    taskQueue: options.taskQueue,
    every: options.every ?? '1 minute',
    passTimeout: '10 minutes',
    summary: 'Onceflow maintenance: start lost reservations, close abandoned runs, purge expired keys',
    createdBy: 'API',
  });
}
