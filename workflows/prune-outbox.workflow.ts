import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { PruneOutboxInput, PruneOutboxReport } from '../activities/prune-outbox';
import { activityOptions } from './activity-options';

const { pruneOutbox } = proxyActivities<Activities>(activityOptions.outboxPrune);

/**
 * One prune pass, started by the `onceflow-outbox-prune` Temporal Schedule
 * (src/outbox/prune-schedule.ts): acknowledged outbox events and inbox rows
 * past OUTBOX_RETENTION_DAYS. Bounded per pass; the next tick continues.
 */
export async function pruneOutboxWorkflow(input: PruneOutboxInput = {}): Promise<PruneOutboxReport> {
  return pruneOutbox(input);
}
