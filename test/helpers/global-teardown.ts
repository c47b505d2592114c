import { rm } from 'node:fs/promises';
import { testInfra, type TestStack } from './infra';

/**
 * Stops what global-setup started. Each stop is bounded: a teardown that hangs
 * keeps the whole run (and CI) waiting with nothing to show for it. A keeper's
 * stop() already SIGKILLs its process group when its server will not stop
 * (dev/keeper.ts, 45 s; 90 s for the cluster's four services); the bound here
 * is the last line of defence.
 */
export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>).__onceflowTestStack as TestStack | undefined;
  if (stack) {
    await bounded('Temporal', () => stack.temporal.stop(), 120_000);
    await bounded('PostgreSQL', () => stack.postgres.stop(), 60_000);
  }
  await rm(testInfra().stateDir, { recursive: true, force: true }).catch(() => undefined);
}

async function bounded(what: string, stop: () => Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stop().then(
      () => 'stopped',
      (error: unknown) => `failed to stop: ${(error as Error)?.message ?? String(error)}`,
    ),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`did not stop within ${timeoutMs / 1000}s`), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'stopped') process.stderr.write(`[test teardown] ${what} ${outcome}; continuing\n`);
}
