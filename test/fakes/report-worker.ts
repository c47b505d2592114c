import { readFile } from 'node:fs/promises';
import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import { Registry } from 'prom-client';
import type { ReportPolling } from '../../activities/gemini-interactions';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { createLogger } from '../../src/observability/logger';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { testInfra } from '../helpers/infra';
import { uniqueTaskQueue, type TestWorker } from '../helpers/temporal';

/**
 * Like startTestWorker, with the report's poll timing set per test: a report
 * test proves "completed by webhook" with a first poll far beyond the test's
 * wait, and "completed by polling" with a short one.
 */
export async function startReportWorker(options: {
  pool: pg.Pool;
  geminiBaseUrl: string;
  reportPolling: Partial<ReportPolling>;
  modelChain?: string[];
  /** Default: a queue of its own. */
  taskQueue?: string;
  /** Per-call timeout of the Gemini client; default 5000 ms. */
  geminiTimeoutMs?: number;
}): Promise<TestWorker> {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // installed already by another helper in this file
  }
  const infra = testInfra();
  const taskQueue = options.taskQueue ?? uniqueTaskQueue('report');
  const registry = new Registry();
  const connection = await NativeConnection.connect({ address: infra.temporalAddress });
  const worker = await createOnceflowWorker({
    connection,
    namespace: infra.temporalNamespace,
    taskQueue,
    activityDeps: {
      pool: options.pool,
      logger: createLogger({ service: 'test-report-worker', level: process.env.LOG_LEVEL ?? 'warn' }),
      gemini: createGeminiClient({ apiKey: 'test-key', baseUrl: options.geminiBaseUrl, timeoutMs: options.geminiTimeoutMs ?? 5_000 }),
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
    },
  };
}
