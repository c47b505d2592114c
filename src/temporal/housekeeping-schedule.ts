import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';

export interface HousekeepingScheduleOptions {
  scheduleId: string;
  /** The workflow each tick starts, with no arguments, as `<scheduleId>/pass`. */
  workflowType: string;
  taskQueue: string;
  /** How often a pass runs. */
  every: Duration;
  /** A pass stuck this long is abandoned; the next tick starts a fresh one. */
  passTimeout: Duration;
  /** What the Temporal UI shows for each pass. */
  summary: string;
  /** Which process created it (the note in the UI). */
  createdBy: 'API' | 'worker';
}

/**
 * Creates a schedule of the service's own periodic passes unless it exists,
 * so every process start and any number of replicas can call it: the passes
 * run once per interval whatever the number of processes, and survive their
 * restarts. Schedule.create has no create-if-absent of its own; its
 * ScheduleAlreadyRunning is the answer "exists". Two passes never overlap
 * (they would contend for the same rows) and ticks missed during an outage
 * are not caught up: the next pass does it all.
 */
export async function ensureHousekeepingSchedule(temporal: Client, options: HousekeepingScheduleOptions): Promise<'created' | 'exists'> {
  try {
    await temporal.schedule.create({
      scheduleId: options.scheduleId,
      spec: { intervals: [{ every: options.every }] },
      action: {
        type: 'startWorkflow',
        workflowType: options.workflowType,
        workflowId: `${options.scheduleId}/pass`,
        taskQueue: options.taskQueue,
        args: [],
        workflowExecutionTimeout: options.passTimeout,
        staticSummary: options.summary,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { note: `created by the Onceflow ${options.createdBy} at start; safe to pause, it is recreated only if deleted` },
    });
    return 'created';
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) return 'exists';
    throw error;
  }
}
