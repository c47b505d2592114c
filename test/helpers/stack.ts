import type { Client } from '@temporalio/client';
import { startOfflineGeminiServer, type OfflineGeminiServer, type StartOfflineGeminiServerOptions } from '../../dev/gemini-offline/server';
import { findFreePort } from '../../dev/ports';
import type { Pool } from '../../src/db/pool';
import { FakeGeminiControl } from '../fakes/gemini';
import { createOwnDatabase } from '../outbox/fixtures/own-database';
import { createApiTenant, startTestApi, type StartTestApiOptions, type TestApi } from './api';
import { createTestPool } from './db';
import { startWorkerProcess, type RunningProcess, type WorkerProcessOptions } from './processes';
import { connectTestClient, startTestWorker, uniqueTaskQueue, type StartTestWorkerOptions, type TestWorker } from './temporal';

export type ApiTenant = { tenantId: string; apiKey: string };

/** What a test file's setup starts besides the pool and the Temporal client. */
export interface TestStackOptions {
  /**
   * A migrated database of the file's own (this prefix names it) instead of
   * the run's shared one, dropped by close(): for files whose relays count
   * what they deliver (see fixtures/own-database.ts). Default: the shared one.
   */
  ownDatabase?: string;
  /** The offline model server (with `geminiControl` to script it); the stack's workers call it. Default none. */
  gemini?: StartOfflineGeminiServerOptions;
  /**
   * A tenant with a fresh API key (this prefix names it), created before any
   * worker, so a worker's configuration can name it. Default none.
   */
  tenant?: string;
  /**
   * An in-process worker (real activities, prebuilt bundle) on a task queue of
   * its own; it calls the stack's `gemini` if there is one, else its own
   * offline server. Default none.
   */
  worker?: Omit<StartTestWorkerOptions, 'pool'>;
  /**
   * A real worker process (`onceflow worker`) calling the stack's `gemini`
   * (required), on `taskQueue` or a fresh one, with its metrics on a free
   * port; close() kills it. `env` may be built from the stack's tenant.
   * Default none.
   */
  workerProcess?: Omit<WorkerProcessOptions, 'taskQueue' | 'geminiUrl' | 'metricsPort' | 'env'> & {
    taskQueue?: string;
    env?: NodeJS.ProcessEnv | ((stack: { tenant: ApiTenant | undefined }) => NodeJS.ProcessEnv);
  };
  /**
   * The facade on a free port. Its task queue: `taskQueue` if given, else the
   * worker's (or worker process's), else one no worker polls (operations stay
   * running). Default none.
   */
  api?: Omit<StartTestApiOptions, 'pool' | 'temporal' | 'taskQueue'> & { taskQueue?: string };
}

export type TestStack<O extends TestStackOptions = TestStackOptions> = {
  pool: Pool;
  temporal: Client;
  /** Stops what started, in reverse order; safe after a partial start. */
  close(): Promise<void>;
} & (O extends { ownDatabase: string } ? { databaseUrl: string } : unknown) &
  (O extends { gemini: object } ? { gemini: OfflineGeminiServer; geminiControl: FakeGeminiControl } : unknown) &
  (O extends { tenant: string } ? { tenant: ApiTenant } : unknown) &
  (O extends { worker: object } ? { worker: TestWorker } : unknown) &
  (O extends { workerProcess: object } ? { workerProcess: RunningProcess & { taskQueue: string; metricsUrl: string } } : unknown) &
  (O extends { api: object } ? { api: TestApi } : unknown);

/**
 * The setup most integration test files share: a pool on the run's
 * PostgreSQL (or a database of the file's own), a Temporal client, and as
 * asked the offline model server, a tenant, a worker (in-process or a real
 * process) and the facade. Use it from beforeAll and call close() from afterAll:
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
    let pool: Pool;
    let databaseUrl: string | undefined;
    if (options.ownDatabase) {
      const db = await createOwnDatabase(options.ownDatabase);
      ({ pool, url: databaseUrl } = db);
      cleanups.push(() => db.drop());
    } else {
      const shared = createTestPool();
      pool = shared;
      cleanups.push(() => shared.end());
    }
    const temporal = await connectTestClient();
    cleanups.push(() => temporal.connection.close());

    let gemini: OfflineGeminiServer | undefined;
    if (options.gemini) {
      const started = await startOfflineGeminiServer(options.gemini);
      gemini = started;
      cleanups.push(() => started.close());
    }
    const tenant = options.tenant === undefined ? undefined : await createApiTenant(pool, options.tenant);

    let worker: TestWorker | undefined;
    if (options.worker) {
      const started = await startTestWorker({ pool, geminiBaseUrl: gemini?.url, ...options.worker });
      worker = started;
      cleanups.push(() => started.stop());
    }
    let workerProcess: (RunningProcess & { taskQueue: string; metricsUrl: string }) | undefined;
    if (options.workerProcess) {
      if (!gemini) throw new Error('startTestStack: a worker process needs `gemini` (the offline model server it calls)');
      const { taskQueue = uniqueTaskQueue('worker'), env, ...processOptions } = options.workerProcess;
      const metricsPort = await findFreePort();
      const started = await startWorkerProcess({
        taskQueue,
        geminiUrl: gemini.url,
        metricsPort,
        databaseUrl,
        ...processOptions,
        env: typeof env === 'function' ? env({ tenant }) : env,
      });
      workerProcess = Object.assign(started, { taskQueue, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` });
      cleanups.push(async () => {
        started.kill('SIGKILL');
        await started.exited;
      });
    }

    let api: TestApi | undefined;
    if (options.api) {
      const { taskQueue, ...apiOptions } = options.api;
      const started = await startTestApi({
        pool,
        temporal,
        taskQueue: taskQueue ?? worker?.taskQueue ?? workerProcess?.taskQueue ?? uniqueTaskQueue('idle'),
        ...apiOptions,
        config: { ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }), ...apiOptions.config },
      });
      api = started;
      cleanups.push(() => started.close());
    }
    const geminiControl = gemini && new FakeGeminiControl(gemini.url);
    return { pool, databaseUrl, temporal, gemini, geminiControl, tenant, worker, workerProcess, api, close } as TestStack<O>;
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
