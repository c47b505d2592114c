import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { startTestApi, type StartTestApiOptions, type TestApi } from './api';
import { createTestPool } from './db';
import { connectTestClient, startTestWorker, uniqueTaskQueue, type StartTestWorkerOptions, type TestWorker } from './temporal';

/** What a test file's setup starts besides the pool and the Temporal client. */
export interface TestStackOptions {
  /** An in-process worker (real activities, prebuilt bundle) on a task queue of its own; default none. */
  worker?: Omit<StartTestWorkerOptions, 'pool'>;
  /**
   * The facade on a free port. Its task queue: `taskQueue` if given, else the
   * worker's, else one no worker polls (operations stay running). Default none.
   */
  api?: Omit<StartTestApiOptions, 'pool' | 'temporal' | 'taskQueue'> & { taskQueue?: string };
}

export type TestStack<O extends TestStackOptions = TestStackOptions> = {
  pool: Pool;
  temporal: Client;
  /** Stops what started, in reverse order; safe after a partial start. */
  close(): Promise<void>;
} & (O extends { worker: object } ? { worker: TestWorker } : unknown) &
  (O extends { api: object } ? { api: TestApi } : unknown);

/**
 * The setup most integration test files share: a pool on the run's
 * PostgreSQL, a Temporal client, and as asked a worker and the facade. Use it
 * from beforeAll and call close() from afterAll:
 *
 *     beforeAll(async () => ({ pool, temporal, worker, api, close } = await startTestStack({ worker: {}, api: {} })));
 *     afterAll(() => close());
 */
export async function startTestStack<O extends TestStackOptions>(options: O): Promise<TestStack<O>> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    const pool = createTestPool();
    cleanups.push(() => pool.end());
    const temporal = await connectTestClient();
    cleanups.push(() => temporal.connection.close());
    let worker: TestWorker | undefined;
    if (options.worker) {
      const started = await startTestWorker({ pool, ...options.worker });
      worker = started;
      cleanups.push(() => started.stop());
    }
    let api: TestApi | undefined;
    if (options.api) {
      const { taskQueue, ...apiOptions } = options.api;
      const started = await startTestApi({ pool, temporal, taskQueue: taskQueue ?? worker?.taskQueue ?? uniqueTaskQueue('idle'), ...apiOptions });
      api = started;
      cleanups.push(() => started.close());
    }
    return { pool, temporal, worker, api, close } as TestStack<O>;
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
