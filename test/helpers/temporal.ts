import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import type pg from 'pg';
import type { ReportPolling } from '../../activities/gemini-interactions';
import { Registry } from 'prom-client';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { startOfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createLogger } from '../../src/observability/logger';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { testInfra } from './infra';

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') }); // retried activity failures are expected in these tests
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
  metricsRegistry: Registry;
  taskQueue: string;
  stop(): Promise<void>;
}

/** Runs Onceflow's real worker (real activities, prebuilt bundle) in this process. */
export interface StartTestWorkerOptions {
  pool: pg.Pool;
  taskQueue?: string;
  /** The fake Gemini to call; default: a fresh offline model server for this worker. */
  geminiBaseUrl?: string;
  /** Default: `['gemini-2.5-flash', 'gemini-2.5-flash-lite']`. */
  modelChain?: string[];
  /** Per-call timeout; default 5000 ms. */
  geminiTimeoutMs?: number;
  /** The report's poll timing (see fakes/report-worker.ts); default the worker's own. */
  reportPolling?: Partial<ReportPolling>;
}

export async function startTestWorker(options: StartTestWorkerOptions): Promise<TestWorker> {
  quietRuntime();
  const infra = testInfra();
  const taskQueue = options.taskQueue ?? uniqueTaskQueue();
  const ownGemini = options.geminiBaseUrl ? undefined : await startOfflineGeminiServer();
  const registry = new Registry();
  const connection = await NativeConnection.connect({ address: infra.temporalAddress });
  const worker = await createOnceflowWorker({
    connection,
    namespace: infra.temporalNamespace,
    taskQueue,
    activityDeps: {
      pool: options.pool,
      logger: createLogger({ service: 'test-worker', level: process.env.LOG_LEVEL ?? 'warn' }),
      gemini: createGeminiClient({
        apiKey: 'test-key',
        baseUrl: options.geminiBaseUrl ?? ownGemini!.url,
        timeoutMs: options.geminiTimeoutMs ?? 5_000,
      }),
      geminiMetrics: createGeminiMetrics(registry),
      modelChain: options.modelChain ?? ['gemini-2.5-flash', 'gemini-2.5-flash-lite'],
      reportPolling: options.reportPolling,
    },
    workflowBundle: { code: await readFile(infra.workflowBundlePath, 'utf8') },
  });
  const running = worker.run();
  return {
    worker,
    metricsRegistry: registry,
    taskQueue,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
      await ownGemini?.close();
    },
  };
}
