/**
 * The client load every injection scenario puts on the stack (faults/
 * scenarios.ts and the cluster's, faults/cluster.ts), and the result row each
 * scenario reports from what the clients saw and what the invariants counted.
 */
import { sleep } from '../../bench/lib/stats';
import { insist, pool, type FaultStack, type KeyOutcome } from './harness';
import type { InvariantReport } from './invariants';

export interface ScenarioResult extends InvariantReport {
  name: string;
  injected: string;
  durationSeconds: number;
}

export interface ScenarioSettings {
  ci: boolean;
}

export interface InsistUnderFaultOptions {
  keys: readonly string[];
  /** The request body of a key (the same on every retry). */
  body: (key: string) => unknown;
  /** Clients insisting at once, one key each. */
  concurrency: number;
  /** Each client first waits a random 0..staggerMs, so new keys keep arriving across the faults. Default 0. */
  staggerMs?: number;
  /** `Prefer: wait=N` of every request. Default 5. */
  waitSeconds?: number;
  /** Injections at most; fewer when every client had its final answer first. */
  times: number;
  /** One injection: its pause, the fault, and the recovery; `n` counts from 1. */
  inject: (n: number) => Promise<void>;
}

/**
 * Clients insist on their keys while `inject` runs again and again beside
 * them. Resolves once every client is done and the injection under way has
 * recovered, so the invariants are checked against a whole stack.
 */
export async function insistUnderFault(stack: FaultStack, options: InsistUnderFaultOptions): Promise<{ outcomes: KeyOutcome[]; injected: number }> {
  let done = false;
  let injected = 0;
  const injector = (async () => {
    while (!done && injected < options.times) {
      await options.inject(injected + 1);
      injected++;
    }
  })();
  const staggerMs = options.staggerMs ?? 0;
  const outcomes = await pool(options.keys, options.concurrency, async (key) => {
    if (staggerMs > 0) await sleep(Math.random() * staggerMs);
    return insist(stack.apiUrl, key, options.body(key), { waitSeconds: options.waitSeconds ?? 5 });
  }).finally(() => (done = true));
  await injector;
  return { outcomes, injected };
}

/** Client-side counts every scenario reports next to the invariants. */
export function clientCounts(outcomes: KeyOutcome[]): { counts: Record<string, number>; violations: string[] } {
  const unexpected = outcomes.flatMap((o) => o.unexpected);
  const gaveUp = outcomes.filter((o) => o.finalStatus === 0);
  return {
    counts: {
      'client requests': outcomes.reduce((s, o) => s + o.requests, 0),
      'client network errors': outcomes.reduce((s, o) => s + o.networkErrors, 0),
      'client 503s': outcomes.reduce((s, o) => s + o.unavailable, 0),
      'client gave up': gaveUp.length,
      'unexpected answers': unexpected.length,
    },
    violations: [
      ...(unexpected.length ? [`${unexpected.length} unexpected answers (e.g. ${unexpected[0]})`] : []),
      ...(gaveUp.length ? [`${gaveUp.length} clients got no final answer in time`] : []),
    ],
  };
}

export function merge(name: string, injected: string, startedAt: number, client: ReturnType<typeof clientCounts>, invariants: InvariantReport): ScenarioResult {
  return {
    name,
    injected,
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    counts: { ...client.counts, ...invariants.counts },
    violations: [...client.violations, ...invariants.violations],
  };
}
