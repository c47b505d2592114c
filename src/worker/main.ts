/**
 * Worker entry: runs Onceflow's workflows and activities on the task queue.
 * Starts alone against existing Temporal and PostgreSQL (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, DATABASE_URL). SIGTERM/SIGINT drain in-flight tasks.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../config';
import { createPool } from '../db/pool';
import { migrate } from '../db/migrate';
import { createLogger } from '../observability/logger';
import { runEntrypoint, requireDatabaseUrl } from '../process/entrypoint';
import { createOnceflowWorker } from './create-worker';

runEntrypoint('worker', async ({ onShutdown }) => {
  const config = loadConfig();
  const logger = createLogger({ service: 'worker', level: config.LOG_LEVEL });
  const pool = createPool({ connectionString: requireDatabaseUrl(config), max: config.DATABASE_POOL_SIZE, applicationName: 'onceflow-worker' });
  onShutdown(() => pool.end());
  await migrate(pool);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  onShutdown(() => connection.close());
  const worker = await createOnceflowWorker({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pool,
    logger,
  });
  onShutdown(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
  });
  logger.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS }, 'worker polling');
  await worker.run();
});
