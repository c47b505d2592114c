/** The Temporal Schedule behind a Onceflow schedule: its id and its options, built in one place. */
import type { ScheduleOptions } from '@temporalio/client';
import type { ScheduledSlotInput } from '../../workflows/scheduled-slot.workflow';
import type { ScheduleRow } from './repository';
import { describeSpec, toTemporalPolicies, toTemporalSpec } from './spec';

/** Scoped by tenant, so no tenant can reach another's schedule through Temporal either. */
export function temporalScheduleId(tenantId: string, scheduleId: string): string {
  return `onceflow/${tenantId}/schedule/${scheduleId}`;
}

/** The schedule's one-line summary, shown as its note in the Temporal UI and on each slot run. */
export function scheduleSummary(row: Pick<ScheduleRow, 'scheduleId' | 'tenantId' | 'operationType' | 'spec'>): string {
  return `Onceflow schedule ${row.scheduleId}: ${row.operationType} ${describeSpec(row.spec)} · tenant ${row.tenantId}`;
}

/** What every slot run of the schedule receives; PATCH of the spec rewrites it (the overlap policy travels in it). */
export function slotInput(row: Pick<ScheduleRow, 'scheduleId' | 'tenantId' | 'operationType' | 'input' | 'spec'>): ScheduledSlotInput {
  return { tenantId: row.tenantId, scheduleId: row.scheduleId, operationType: row.operationType, input: row.input, overlap: row.spec.overlap };
}

export function temporalScheduleOptions(row: ScheduleRow, taskQueue: string): ScheduleOptions {
  const slot = slotInput(row);
  return {
    scheduleId: temporalScheduleId(row.tenantId, row.scheduleId),
    spec: toTemporalSpec(row.spec),
    policies: toTemporalPolicies(row.spec),
    action: {
      type: 'startWorkflow',
      workflowType: 'scheduledSlotWorkflow',
      args: [slot],
      taskQueue,
      // Temporal appends each slot's nominal time to this id, so the runs of
      // one slot share an id and the slot workflow can read its nominal time.
      workflowId: `onceflow/${row.tenantId}/schedule/${row.scheduleId}/slot`,
      staticSummary: `slot of ${row.operationType} schedule ${row.scheduleId} (tenant ${row.tenantId})`,
    },
    state: { paused: row.paused, note: scheduleSummary(row) },
  };
}
