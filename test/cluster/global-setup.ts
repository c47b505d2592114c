import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { keepPostgres } from '../../dev/keeper';
import { keepLocalCluster, type KeptCluster } from '../../dev/temporal-cluster';
import { createPool } from '../../src/db/pool';
import { migrate } from '../../src/db/migrate';
import { findFreePort } from '../../dev/ports';
import { TEST_INFRA_ENV, type TestInfra, type TestStack } from '../helpers/infra';

/**
 * The cluster tier's global setup (ONCEFLOW_TEST_TEMPORAL=cluster): the same
 * TestInfra as test/helpers/global-setup.ts, but Temporal is the real server
 * on the run's PostgreSQL with four shards and four service processes
 * (dev/temporal-cluster). Test files cannot tell the difference except by
 * behaviour, which is the point. PostgreSQL and the cluster run under keepers
 * (dev/keeper.ts), so a SIGKILLed jest leaves neither behind.
 */
export default async function globalSetup(): Promise<void> {
  const root = path.resolve(__dirname, '../..');
  const stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-cluster-test-'));
  await chmod(stateDir, 0o755);
  const log = (line: string) => process.stderr.write(`[cluster setup] ${line}\n`);
  const [postgres, bundle] = await Promise.all([
    keepPostgres({ dir: path.join(stateDir, 'pg'), port: await findFreePort() }, { logFile: path.join(stateDir, 'postgres.log') }),
    bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietBundlerLogger }),
  ]);
  const databaseUrl = postgres.info.connectionString;
  let cluster: KeptCluster;
  try {
    const pool = createPool({ connectionString: databaseUrl });
    await migrate(pool).finally(() => pool.end());
    cluster = await keepLocalCluster({
      toolsDir: path.join(root, '.onceflow', 'tools'),
      postgresUrl: databaseUrl,
      dir: path.join(stateDir, 'temporal-cluster'),
      // The standalone UI server on the cluster, as `onceflow start --temporal cluster` runs it.
      ui: { port: await findFreePort() },
      log,
      keeper: { logFile: path.join(stateDir, 'temporal-cluster.log') },
    });
    // If jest is SIGKILLed, PostgreSQL stays up until the cluster's keeper has stopped its services.
    postgres.outlive([cluster.keeper.pid]);
  } catch (error) {
    // jest runs no teardown after a failed setup
    await postgres.stop().catch(() => undefined);
    throw error;
  }
  const workflowBundlePath = path.join(stateDir, 'workflow-bundle.js');
  await writeFile(workflowBundlePath, bundle.code);
  const infra: TestInfra = {
    databaseUrl,
    temporalAddress: cluster.address,
    temporalNamespace: cluster.namespace,
    temporalUiUrl: cluster.uiUrl!,
    temporalBinary: process.env.TEMPORAL_CLI_PATH || undefined,
    workflowBundlePath,
    stateDir,
  };
  process.env[TEST_INFRA_ENV] = JSON.stringify(infra);
  process.env.ONCEFLOW_TEST_CLUSTER_DIR = path.join(stateDir, 'temporal-cluster');
  (globalThis as Record<string, unknown>).__onceflowTestStack = { postgres, temporal: cluster } satisfies TestStack;
}

const quietBundlerLogger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`[bundler] ${message}\n`),
  error: (message: string) => process.stderr.write(`[bundler] ${message}\n`),
  log: () => undefined,
};
