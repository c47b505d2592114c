import { type NativeConnection, Worker, type WorkerPlugin, type WorkflowBundleOption } from '@temporalio/worker';
import type { PayloadCodec } from '@temporalio/common';
import { createActivities, type ActivityDeps } from '../../activities';

export interface CreateOnceflowWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** Everything the activities need (database, Gemini client, metrics). */
  activityDeps: ActivityDeps;
  /** A prebuilt bundle (the worker entry's cached one, or the tests' built once); default: bundle workflows/ at start. */
  workflowBundle?: WorkflowBundleOption;
  /** E.g. the OpenTelemetry plugin when tracing is on; default none. A prebuilt bundle must be built with the same plugins. */
  plugins?: WorkerPlugin[];
  /** Encrypts and decrypts every payload (payloadCodecFromConfig); runs outside the workflow sandbox. Default none. The api's client must use the same keys. */
  payloadCodec?: PayloadCodec;
}

export async function createOnceflowWorker(options: CreateOnceflowWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath: require.resolve('../../workflows') }),
    activities: createActivities(options.activityDeps),
    plugins: options.plugins ?? [],
    ...(options.payloadCodec ? { dataConverter: { payloadCodecs: [options.payloadCodec] } } : {}),
  });
}
