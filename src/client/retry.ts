/**
 * The retry policy of the client as pure functions, so the arithmetic is
 * tested without a network: which answers are retried, how long to wait.
 */
import { fullJitterBackoffMs } from '../common/backoff';
import type { RetryOptions } from './types';

export type ResolvedRetryPolicy = Required<RetryOptions>;

export const DEFAULT_RETRY_POLICY: ResolvedRetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  deadlineMs: 60_000,
  attemptTimeoutMs: 30_000,
  honorRetryAfter: true,
};

export function resolveRetryPolicy(...layers: (RetryOptions | undefined)[]): ResolvedRetryPolicy {
  const policy = { ...DEFAULT_RETRY_POLICY };
  for (const layer of layers) {
    for (const [name, value] of Object.entries(layer ?? {}) as [keyof RetryOptions, never][]) {
      if (value !== undefined) policy[name] = value;
    }
  }
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) throw new RangeError(`retry.maxAttempts must be an integer ≥ 1, got ${policy.maxAttempts}`);
  for (const name of ['baseDelayMs', 'maxDelayMs', 'deadlineMs', 'attemptTimeoutMs'] as const) {
    if (!(policy[name] >= 0)) throw new RangeError(`retry.${name} must be ≥ 0, got ${policy[name]}`);
  }
  return policy;
}

/**
 * Statuses that say "not now, the same request may succeed later": the
 * operation is still running (409), the tenant is over its rate (429), or
 * PostgreSQL/Temporal are unreachable (503). Everything else is final for
 * the call: 400/401/404/413/415/422 would fail the same way again, and a
 * 502 or other status of a replayed operation failure is the operation's
 * outcome, not a transport problem.
 */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([409, 429, 503]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUSES.has(status);
}

/**
 * The client's wait before a retry: the shared full-jitter backoff
 * (src/common/backoff.ts) under this policy's base and cap.
 * @param retryIndex 0 before the second attempt, 1 before the third, …
 * @param random a number in [0, 1); default Math.random
 */
export function backoffDelayMs(retryIndex: number, policy: Pick<ResolvedRetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  return fullJitterBackoffMs({ retryIndex, baseMs: policy.baseDelayMs, capMs: policy.maxDelayMs, random });
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns ms,
 * or undefined when absent or unreadable.
 */
export function parseRetryAfterMs(header: string | null | undefined, nowMs: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const dateMs = Date.parse(value);
  if (Number.isNaN(dateMs)) return undefined;
  return Math.max(0, dateMs - nowMs);
}

/** The wait before the next attempt: the jittered backoff, but never less than the server's Retry-After. */
export function nextDelayMs(options: {
  retryIndex: number;
  policy: ResolvedRetryPolicy;
  retryAfterMs: number | undefined;
  random?: () => number;
}): number {
  const backoff = backoffDelayMs(options.retryIndex, options.policy, options.random);
  if (!options.policy.honorRetryAfter || options.retryAfterMs === undefined) return backoff;
  return Math.max(backoff, options.retryAfterMs);
}
