/**
 * THE table of activity timeouts and retry policies. Every proxyActivities call
 * in workflows/ takes one named entry from here; each says why it is set so.
 */
import type { ActivityOptions } from '@temporalio/workflow';
import { nonRetryableFailureTypes } from './failure-types';

export const activityOptions = {
  /** A maintenance pass (reconcile or purge) works in bounded batches; retried a little, then the next scheduled pass takes over. */
  maintenance: {
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
  },
  /** Postgres writes are short and idempotent by construction (effect guard); retry until the database is back. */
  databaseWrite: {
    startToCloseTimeout: '30 seconds',
    retry: {
      initialInterval: '500 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: nonRetryableFailureTypes,
    },
  },
} satisfies Record<string, ActivityOptions>;
