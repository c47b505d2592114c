import { rm } from 'node:fs/promises';
import type { LocalPostgres } from '../../dev/local-postgres';
import type { LocalTemporal } from '../../dev/local-temporal';
import { testInfra } from './infra';

/**
 * Stops what global-setup started. Each stop is bounded: a teardown that hangs
 * keeps the whole run (and CI) waiting with nothing to show for it. PostgreSQL's
 * stop() already returns for a server that exited and escalates to SIGKILL for
 * one that will not stop; the bound here is the last line of defence.
 */
export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>).__onceflowTestStack as
    | { postgres: LocalPostgres; temporal: LocalTemporal }
    | undefined;
  if (stack) {
    await bounded('the Temporal dev server', () => stack.temporal.stop(), 30_000);
    await bounded('PostgreSQL', () => stack.postgres.stop(), 30_000);
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
