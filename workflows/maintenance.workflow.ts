import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { activityOptions } from './activity-options';

const { reconcileOperations, purgeExpiredOperations } = proxyActivities<Activities>(activityOptions.maintenance);

export interface MaintenanceReport {
  reconciled: Awaited<ReturnType<Activities['reconcileOperations']>>;
  purged: number;
}

/**
 * One maintenance pass, started by the `onceflow-maintenance` Temporal Schedule
 * (src/operations/maintenance-schedule.ts): first self-heal (start lost
 * reservations, close abandoned runs), then purge expired finished rows. Un-started
 * operations are started on this workflow's own task queue, the operations' queue.
 */
export async function maintenanceWorkflow(): Promise<MaintenanceReport> {
  const reconciled = await reconcileOperations({ taskQueue: workflowInfo().taskQueue });
  const { purged } = await purgeExpiredOperations({});
  return { reconciled, purged };
}
