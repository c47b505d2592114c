/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff and Jitter"): a uniformly random wait in [0, min(cap, base·2^n)),
 * so many callers that failed together do not retry together. The one copy
 * used by the relay (a failed delivery), the client SDK (a retried call) and
 * the Gemini activity (a retried model call).
 *
 * Dependency-free on purpose: the client entry point ships it.
 */
export interface FullJitterOptions {
  /** 0 before the second attempt, 1 before the third, … */
  retryIndex: number;
  /** The ceiling of the first wait. */
  baseMs: number;
  /** The ceiling no wait exceeds, however many attempts. */
  capMs: number;
  /** A number in [0, 1); default Math.random. */
  random?: () => number;
}

export function fullJitterBackoffMs(options: FullJitterOptions): number {
  // 2 ** 1100 is Infinity, and min(cap, Infinity) is still the cap: no overflow to guard.
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.max(0, options.retryIndex));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}
