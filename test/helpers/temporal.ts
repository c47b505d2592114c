import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import type pg from 'pg';
import { createLogger } from '../../src/observability/logger';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { testInfra } from './infra';

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // already installed by another helper in this test file
  }
}

/** A task queue no other test uses, so workers never steal each other's tasks. */
export function uniqueTaskQueue(prefix = 'test'): string {
  return `${prefix}-${randomUUID()}`;
}

export async function connectTestClient(): Promise<Client> {
  const infra = testInfra();
  const connection = await Connection.connect({ address: infra.temporalAddress });
  return new Client({ connection, namespace: infra.temporalNamespace });
}

export interface TestWorker {
  worker: Worker;
  taskQueue: string;
  stop(): Promise<void>;
}

/** Runs Onceflow's real worker (real activities, prebuilt bundle) in this process. */
export async function startTestWorker(options: { pool: pg.Pool; taskQueue?: string }): Promise<TestWorker> {
  quietRuntime();
  const infra = testInfra();
  const taskQueue = options.taskQueue ?? uniqueTaskQueue();
  const connection = await NativeConnection.connect({ address: infra.temporalAddress });
  const worker = await createOnceflowWorker({
    connection,
    namespace: infra.temporalNamespace,
    taskQueue,
    pool: options.pool,
    logger: createLogger({ service: 'test-worker', level: process.env.LOG_LEVEL ?? 'warn' }),
    workflowBundle: { code: await readFile(infra.workflowBundlePath, 'utf8') },
  });
  const running = worker.run();
  return {
    worker,
    taskQueue,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
