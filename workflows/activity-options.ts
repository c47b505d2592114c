/**
 * THE table of activity timeouts and retry policies. Every proxyActivities call
 * in workflows/ takes one named entry from here; each says why it is set so.
 */
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import { nonRetryableFailureTypes } from './failure-types';

/**
 * Backoff of Gemini retries. Temporal's own retry backoff has no jitter, so the
 * activity sets each retry's delay itself (ApplicationFailure nextRetryDelay):
 * the server's RetryInfo delay for a 429, otherwise this exponential backoff
 * with full jitter, so that many operations failing together do not retry in step.
 */
export const geminiBackoff = { initialMs: 1_000, maxMs: 20_000, coefficient: 2 } as const;

/** startToCloseTimeout of one Gemini call attempt (geminiCall), in ms. */
export const geminiCallStartToCloseMs = 120_000;

/**
 * How long the paid-call guard keeps trying to store a paid Gemini answer while
 * PostgreSQL is unreachable, before the attempt fails and its retry pays again:
 * long enough to ride out a restart or a failover.
 */
export const geminiStoreRetryMs = 30_000;

/**
 * The largest GEMINI_REQUEST_TIMEOUT_MS that config accepts: the SDK must cut
 * a hung call, and the attempt store its outcome (geminiStoreRetryMs, plus 10 s
 * for the rest of its PostgreSQL work), before startToClose ends the attempt.
 * Otherwise Temporal starts the retry (a second paid call) while the first
 * call still runs, and both are paid.
 */
export const maxGeminiRequestTimeoutMs = geminiCallStartToCloseMs - geminiStoreRetryMs - 10_000;

/**
 * How soon Temporal gives up on a Gemini activity attempt whose worker stopped
 * heartbeating (SIGKILL, lost host), instead of waiting out startToClose.
 * Long enough that a busy event loop does not miss it (the activity beats
 * every third of it; the SDK sends at most one beat per 80 % of it).
 */
const geminiHeartbeatTimeout = '15 seconds';

export const activityOptions = {
  /** A maintenance pass (reconcile or purge) works in bounded batches; retried a little, then the next scheduled pass takes over. */
  maintenance: {
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3 },
  },
  /** One prune pass deletes in bounded batches, each committed alone; retried a little, then the next hourly pass continues. */
  outboxPrune: {
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '10 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3 },
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
  /** Short reads (model chain, attempts so far): cheap to repeat, so retried quickly and without limit. */
  quickRead: {
    startToCloseTimeout: '10 seconds',
    retry: { initialInterval: '200 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds' },
  },
  /**
   * One paid Gemini call. Three attempts per model, then the workflow falls
   * back to the next model. The SDK's own timeout (GEMINI_REQUEST_TIMEOUT_MS,
   * checked below maxGeminiRequestTimeoutMs) ends a hung call first;
   * startToClose is the backstop if the worker hangs, so a hung call is always
   * retried; a dead worker is noticed by its missing heartbeats. 400/401/403/404
   * and safety blocks are final (nonRetryableErrorTypes).
   */
  geminiCall: {
    startToCloseTimeout: geminiCallStartToCloseMs,
    heartbeatTimeout: geminiHeartbeatTimeout,
    // A canceled operation waits for the attempt in flight to stop (it learns
    // of the cancel from its next heartbeat and aborts the HTTP call): its
    // bill is written after that attempt recorded whether it was paid, never
    // while an answer could still arrive and be stored unbilled.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: `${geminiBackoff.initialMs} milliseconds`,
      backoffCoefficient: geminiBackoff.coefficient,
      maximumInterval: `${geminiBackoff.maxMs} milliseconds`,
      maximumAttempts: 3,
      nonRetryableErrorTypes: nonRetryableFailureTypes,
    },
  },
  /**
   * One free read of a background interaction (generate-report). Short and
   * retried briefly: if Gemini stays unreachable the workflow's next poll timer
   * tries again, so a long outage costs timers, not activity slots. Heartbeats,
   * so a poll lost with its worker is retried in seconds, not after a minute.
   */
  interactionPoll: {
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: geminiHeartbeatTimeout,
    // As geminiCall: a poll that records the report's end settles its spend; the canceled run bills after it.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '10 seconds',
      maximumAttempts: 3,
      nonRetryableErrorTypes: nonRetryableFailureTypes,
    },
  },
  /**
   * Stops the background interaction of a canceled report (free at Gemini).
   * Retried briefly: if Gemini stays unreachable the operation still ends
   * canceled, and the interaction runs out on Gemini's side.
   */
  interactionCancel: {
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: geminiHeartbeatTimeout,
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '10 seconds',
      maximumAttempts: 3,
      nonRetryableErrorTypes: nonRetryableFailureTypes,
    },
  },
} satisfies Record<string, ActivityOptions>;
