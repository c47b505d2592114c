import type pg from 'pg';
import type { ReportPolling } from '../../activities/gemini-interactions';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';

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
  return startTestWorker({ ...options, taskQueue: options.taskQueue ?? uniqueTaskQueue('report') });
}
