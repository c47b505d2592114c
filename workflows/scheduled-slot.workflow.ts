import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { OverlapPolicy } from '../src/schedules/spec';
import { activityOptions } from './activity-options';

/** What a Onceflow schedule's action hands each slot (src/schedules/temporal.ts builds it). */
export interface ScheduledSlotInput {
  tenantId: string;
  scheduleId: string;
  operationType: string;
  input: unknown;
  /** The tenant's overlap policy, applied to the slot's operation; absent in schedules created before it travelled here (allow_all). */
  overlap?: OverlapPolicy;
}

/** Set by Temporal on every workflow a Schedule starts: the slot's nominal time, before jitter and catch-up delay. */
const scheduledStartTime = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);

// databaseWrite: reserve-and-start is idempotent by key, so it is retried until
// PostgreSQL and Temporal answer; a refused payload (InvalidState) is final.
const { startScheduledOperation } = proxyActivities<Activities>(activityOptions.databaseWrite);

/**
 * One slot of a Onceflow schedule: starts the slot's operation under a key
 * derived from the schedule id and the slot's nominal time, then ends. The
 * operation runs as its own workflow (the same one HTTP starts), so it is an
 * ordinary operation resource. A slot run twice (a catch-up racing the tick, a
 * backfill requested twice, a recreated schedule) derives the same key, and
 * the second run attaches to the first operation instead of starting another.
 */
export async function scheduledSlotWorkflow(slot: ScheduledSlotInput): Promise<Awaited<ReturnType<Activities['startScheduledOperation']>>> {
  const info = workflowInfo();
  const nominal = info.typedSearchAttributes.get(scheduledStartTime) ?? nominalTimeFromWorkflowId(info.workflowId);
  if (!nominal) throw new Error(`workflow ${info.workflowId} was not started by a schedule: it has no nominal time`);
  return startScheduledOperation({ ...slot, nominalTimeMs: nominal.getTime() });
}

/** Temporal names a scheduled run `<action workflow id>-<nominal time, RFC 3339>`; the fallback when the search attribute is missing. */
function nominalTimeFromWorkflowId(workflowId: string): Date | undefined {
  const match = /-(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/.exec(workflowId);
  return match ? new Date(match[1]!) : undefined;
}
