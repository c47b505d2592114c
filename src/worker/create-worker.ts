import { type NativeConnection, Worker, type WorkerPlugin, type WorkflowBundle } from '@temporalio/worker';
import type pg from 'pg';
import { createActivities } from '../../activities';
import type { Logger } from '../observability/logger';

export interface CreateOnceflowWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: pg.Pool;
  logger: Logger;
  /** A prebuilt bundle (tests build it once); default: bundle workflows/ at start. */
  workflowBundle?: WorkflowBundle;
  /** E.g. the OpenTelemetry plugin when tracing is on; default none. A prebuilt bundle must be built with the same plugins. */
  plugins?: WorkerPlugin[];
}

export async function createOnceflowWorker(options: CreateOnceflowWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath: require.resolve('../../workflows') }),
    activities: createActivities({ pool: options.pool, logger: options.logger }),
    plugins: options.plugins ?? [],
  });
}
