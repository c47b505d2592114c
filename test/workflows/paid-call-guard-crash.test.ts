import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { connectTestClient, startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { metricValue, scrapedMetricValue } from '../fakes/metrics';
import { parseAddress, startPartitionProxy, type PartitionProxy } from '../fakes/partition-proxy';
import { startReportWorker } from '../fakes/report-worker';

/**
 * The guards of both paid Gemini calls under a real SIGKILL at the one point
 * where only the guard can save the money: the answer (a generated response,
 * an interaction id) is committed in PostgreSQL, but Temporal never heard that
 * the activity completed, so it runs the activity again.
 *
 * To stop the completion exactly there, the worker process reaches Temporal
 * through a proxy the test partitions while the fake Gemini holds its answer;
 * then the answer is released, the worker commits it (PostgreSQL is reached
 * directly) and its completion goes nowhere. The kill follows; Temporal
 * notices the dead attempt by its missing heartbeats and retries it on a new
 * worker, connected directly.
 */
describe('the paid-call guards after a worker dies between storing the answer and reporting it', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let tenant: { tenantId: string; apiKey: string };
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    tenant = await createApiTenant(pool);
  });
  beforeEach(() => fake.reset());
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  /** A facade, and a real worker process that reaches Temporal only through a partitionable proxy, on a queue of their own. */
  async function workerBehindProxy(env: Record<string, string> = {}): Promise<{ taskQueue: string; api: TestApi; proxy: PartitionProxy; child: RunningProcess; metricsUrl: string }> {
    const infra = testInfra();
    const metricsPort = await findFreePort();
    const taskQueue = uniqueTaskQueue('guard-crash');
    const api = await startTestApi({ pool, temporal, taskQueue });
    cleanups.push(() => api.close());
    const proxy = await startPartitionProxy(parseAddress(infra.temporalAddress));
    cleanups.push(() => proxy.close());
    const child = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, temporalAddress: proxy.address, metricsPort, env });
    cleanups.push(() => child.kill('SIGKILL'));
    return { taskQueue, api, proxy, child, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
  }

  const pendingActivity = async (workflowId: string, activityType: string) =>
    (await temporal.workflow.getHandle(workflowId).describe()).raw.pendingActivities?.find((a) => a.activityType?.name === activityType);

  /** Waits until Temporal has timed out the first attempt by its missing heartbeats (not at the 2-minute start-to-close). */
  async function heartbeatTimedOut(workflowId: string, activityType: string) {
    const retried = await eventually('Temporal to time out the silent attempt', async () => {
      const activity = await pendingActivity(workflowId, activityType);
      return activity?.lastFailure?.timeoutFailureInfo ? activity : undefined;
    }, 90_000);
    expect(retried.lastFailure!.timeoutFailureInfo!.timeoutType).toBe(proto.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT);
  }

  /**
   * Partitions the worker from Temporal once the fake has the paid call, lets
   * the answer go, waits for `committed`, checks that Temporal still sees the
   * attempt running, kills the worker, and waits for the heartbeat timeout.
   */
  async function killAfterCommit(options: { proxy: PartitionProxy; child: RunningProcess; workflowId: string; activityType: string; committed: () => Promise<boolean> }) {
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);
    options.proxy.partition();
    expect(await fake.release()).toBe(1);
    await eventually('the guard to commit the answer', options.committed);
    expect(await pendingActivity(options.workflowId, options.activityType)).toMatchObject({
      attempt: 1, state: proto.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
    });
    options.child.kill('SIGKILL');
    expect(await options.child.exited).toBe('SIGKILL');
    await heartbeatTimedOut(options.workflowId, options.activityType);
  }

  const operationIdOf = async (key: string) =>
    (await pool.query<{ operation_id: string }>('SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0]!.operation_id;
  const statusOf = async (operationId: string) => (await pool.query('SELECT status FROM operations WHERE operation_id = $1', [operationId])).rows[0].status as string;
  const bills = async (operationId: string) => (await pool.query('SELECT 1 FROM usage_ledger WHERE operation_id = $1', [operationId])).rows;
  const events = async (operationId: string) =>
    (await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows.map((r) => r.event_type);

  it('generate-content reuses the stored response on the retry: one paid call, one bill, one event, and the avoided call is counted', async () => {
    const { taskQueue, api, proxy, child } = await workerBehindProxy();
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const key = randomUUID();
    const body = { prompt: 'paid once, reported never' };
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body });
    expect(created.status).toBe(202);
    const operationId = await operationIdOf(key);

    await killAfterCommit({
      proxy, child, workflowId: created.json!.workflowId, activityType: 'generateWithGemini',
      committed: async () => (await pool.query(`SELECT 1 FROM effects WHERE operation_id = $1 AND step = 'gemini:gemini-2.5-flash'`, [operationId])).rowCount === 1,
    });

    const replacement: TestWorker = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    cleanups.push(() => replacement.stop());
    // The dead worker may have finished the operation in its activity before
    // the kill (its PostgreSQL link was up); the run ends only once the retry
    // on the new worker reported the attempt, reusing the stored answer.
    await temporal.workflow.getHandle(created.json!.workflowId).result();
    expect(await statusOf(operationId)).toBe('succeeded');

    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await bills(operationId)).toHaveLength(1);
    expect(await events(operationId)).toEqual(['operation.succeeded']);
    expect(await metricValue(replacement.metricsRegistry, 'onceflow_gemini_calls_avoided_total', { model: 'gemini-2.5-flash' })).toBe(1);
    expect(await metricValue(replacement.metricsRegistry, 'onceflow_gemini_calls_total')).toBe(0);
    const final = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body });
    expect(final.status).toBe(200);
    expect(final.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['succeeded']);
  }, 300_000);

  it('counts the tokens and cost of a paid call whose answer lost the store race to its own retry', async () => {
    // The held call must outlive the heartbeat timeout and the retry: our own timeout may not cut it first.
    const { taskQueue, api, proxy, child, metricsUrl } = await workerBehindProxy({ GEMINI_REQUEST_TIMEOUT_MS: '80000' });
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const key = randomUUID();
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'paid twice, stored once' } });
    expect(created.status).toBe(202);
    const operationId = await operationIdOf(key);

    // The first attempt's call is in flight and its worker cut off: Temporal retries it elsewhere while it still runs.
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);
    proxy.partition();
    await heartbeatTimedOut(created.json!.workflowId, 'generateWithGemini');
    const replacement = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    cleanups.push(() => replacement.stop());
    await eventually('the retry to finish the operation', async () => (await statusOf(operationId)) === 'succeeded', 120_000);

    // Now the first call's answer arrives: its store finds the retry's answer already there.
    expect(await fake.release()).toBe(1);
    await child.waitForOutput(/a concurrent attempt stored its answer first/, 60_000);
    expect(await fake.calls({ paid: true })).toHaveLength(2); // the window the guard documents: both were paid
    expect(await bills(operationId)).toHaveLength(1);
    expect(await events(operationId)).toEqual(['operation.succeeded']);
    const { promptTokens, outputTokens } = (await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'paid twice, stored once' } })).json!.result.usage;
    const labels = { tenant: tenant.tenantId, operation_type: 'generate-content', model: 'gemini-2.5-flash' };
    // The offline model answers a prompt the same way twice, so the losing call's tokens equal the stored ones.
    expect(await scrapedMetricValue(metricsUrl, 'onceflow_gemini_calls_total', { ...labels, outcome: 'succeeded' })).toBe(1);
    expect(await scrapedMetricValue(metricsUrl, 'onceflow_gemini_tokens_total', { ...labels, kind: 'prompt' })).toBe(promptTokens);
    expect(await scrapedMetricValue(metricsUrl, 'onceflow_gemini_tokens_total', { ...labels, kind: 'output' })).toBe(outputTokens);
    expect(await scrapedMetricValue(metricsUrl, 'onceflow_gemini_estimated_cost_micro_usd_total', labels)).toBe(Math.round(promptTokens * 0.3 + outputTokens * 2.5));
  }, 300_000);

  it('generate-report reuses the recorded interaction on the retry: one interactions.create, one bill, one event', async () => {
    const { taskQueue, api, proxy, child } = await workerBehindProxy();
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const key = randomUUID();
    const body = { prompt: 'a report submitted once, reported never' };
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body });
    expect(created.status).toBe(202);
    const operationId = await operationIdOf(key);

    await killAfterCommit({
      proxy, child, workflowId: created.json!.workflowId, activityType: 'submitInteraction',
      committed: async () => (await pool.query('SELECT 1 FROM gemini_interactions WHERE operation_id = $1 AND interaction_id IS NOT NULL', [operationId])).rowCount === 1,
    });

    const replacement = await startReportWorker({ pool, taskQueue, geminiBaseUrl: gemini.url, reportPolling: { initialMs: 200, maxMs: 500 } });
    cleanups.push(() => replacement.stop());
    await eventually('the report to succeed on the new worker', async () => (await statusOf(operationId)) === 'succeeded', 120_000);

    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    expect(await bills(operationId)).toHaveLength(1);
    expect(await events(operationId)).toEqual(['operation.succeeded']);
    expect(await metricValue(replacement.metricsRegistry, 'onceflow_gemini_calls_avoided_total', { model: 'gemini-2.5-flash' })).toBe(1);
    const ledger = (await pool.query('SELECT submit_attempts, status FROM gemini_interactions WHERE operation_id = $1', [operationId])).rows;
    expect(ledger).toEqual([{ submit_attempts: 1, status: 'completed' }]);
    const final = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body });
    expect(final.status).toBe(200);
    expect(final.json!.result.interactionId).toBe((await fake.listInteractions())[0]!.id);
  }, 300_000);
});
