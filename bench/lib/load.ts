/**
 * Load generators: autocannon for fixed HTTP requests, and a closed-loop
 * driver for anything that needs a fresh key (or a non-HTTP call) per request.
 */
import autocannon from 'autocannon';
import { percentile } from './stats';

export interface LoadResult {
  /** Successful operations per second. */
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  failed: number;
  durationMs: number;
  /** Status counts (HTTP) or error names (driver). */
  outcomes: Record<string, number>;
}

export interface AutocannonOptions {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections: number;
  durationSeconds: number;
}

export async function runAutocannon(options: AutocannonOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: options.url,
    method: options.method ?? 'GET',
    headers: options.headers,
    body: options.body,
    connections: options.connections,
    duration: options.durationSeconds,
  });
  const outcomes: Record<string, number> = {};
  for (const [status, stats] of Object.entries(result.statusCodeStats ?? {})) outcomes[status] = (stats as { count: number }).count;
  if (result.errors) outcomes.errors = result.errors;
  if (result.timeouts) outcomes.timeouts = result.timeouts;
  const ok = result['2xx'];
  const durationMs = result.duration * 1000;
  return {
    throughput: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ok,
    failed: result.non2xx + result.errors,
    durationMs,
    outcomes,
  };
}

export interface ClosedLoopOptions {
  concurrency: number;
  /** Stop after this many operations … */
  total?: number;
  /** … or after this long, whichever comes first. */
  durationMs?: number;
  /** One operation; `i` is unique per call. Throwing counts as a failure (the error's name or message is tallied). */
  op: (i: number) => Promise<void>;
}

/** `concurrency` loops, each issuing the next operation as soon as its previous one finished. */
export async function runClosedLoop(options: ClosedLoopOptions): Promise<LoadResult & { latenciesMs: number[] }> {
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  let next = 0;
  let failed = 0;
  const startedAt = performance.now();
  const deadline = options.durationMs !== undefined ? startedAt + options.durationMs : Number.POSITIVE_INFINITY;
  const total = options.total ?? Number.POSITIVE_INFINITY;
  const loop = async () => {
    for (;;) {
      if (next >= total || performance.now() >= deadline) return;
      const i = next++;
      const t0 = performance.now();
      try {
        await options.op(i);
        latencies.push(performance.now() - t0);
        outcomes.ok = (outcomes.ok ?? 0) + 1;
      } catch (error) {
        failed++;
        const name = (error as Error)?.message?.slice(0, 60) ?? String(error);
        outcomes[name] = (outcomes[name] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const durationMs = performance.now() - startedAt;
  return {
    throughput: latencies.length / (durationMs / 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    ok: latencies.length,
    failed,
    durationMs,
    outcomes,
    latenciesMs: latencies,
  };
}
