import { Context } from '@temporalio/activity';

/** Heartbeat cadence when the activity has no heartbeatTimeout (heartbeats still carry cancellation). */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000;

/**
 * Runs `work` while heartbeating to Temporal.
 *
 * Guards the window of a worker that dies mid-call: without heartbeats,
 * Temporal notices only when startToCloseTimeout ends; with them, after the
 * activity's heartbeatTimeout (workflows/activity-options.ts), and the retry
 * starts that much sooner. Heartbeats are also how this attempt learns that
 * Temporal cancelled it or already timed it out: `work` gets the activity's
 * cancellation signal to hand to the HTTP call, so such an attempt stops
 * waiting instead of racing its own retry.
 *
 * Beats three times per heartbeatTimeout; the SDK throttles what it sends.
 */
export async function whileHeartbeating<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const context = Context.current();
  const timeoutMs = context.info.heartbeatTimeoutMs;
  const intervalMs = timeoutMs ? Math.max(1_000, Math.floor(timeoutMs / 3)) : DEFAULT_HEARTBEAT_INTERVAL_MS;
  context.heartbeat();
  const timer = setInterval(() => context.heartbeat(), intervalMs);
  try {
    return await work(context.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}
