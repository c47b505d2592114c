import { rm } from 'node:fs/promises';
import type { LocalPostgres } from '../../src/dev/local-postgres';
import type { LocalTemporal } from '../../src/dev/local-temporal';
import { testInfra } from './infra';

export default async function globalTeardown(): Promise<void> {
  const stack = (globalThis as Record<string, unknown>).__onceflowTestStack as
    | { postgres: LocalPostgres; temporal: LocalTemporal }
    | undefined;
  await stack?.temporal.stop().catch(() => undefined);
  await stack?.postgres.stop().catch(() => undefined);
  await rm(testInfra().stateDir, { recursive: true, force: true }).catch(() => undefined);
}
