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
 * Beats three times per heartbeatTimeout, the first a third of the way in,
 * not at the start: the timeout counts from the attempt's start anyway, and
 * a beat at the start cost every call, however short, a heartbeat RPC and a
 * write of the run's state at the server (about 6 ms of Temporal's CPU per
 * operation measured on the dev server, a quarter of a bare workflow's).
 * The SDK sends the first beat at once and throttles the next ones to 80 %
 * of the timeout: a cancel reaches the call at its next beat sent, 5 s in
 * and then every 12 s with the 15 s timeout of a Gemini call.
 */
export async function whileHeartbeating<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const context = Context.current();
  const timeoutMs = context.info.heartbeatTimeoutMs;
  const intervalMs = timeoutMs ? Math.max(1_000, Math.floor(timeoutMs / 3)) : DEFAULT_HEARTBEAT_INTERVAL_MS;
  const timer = setInterval(() => context.heartbeat(), intervalMs);
  try {
    return await work(context.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}
