import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../src/dev/ports';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../src/integrations/gemini/offline-server';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startProcess, type RunningProcess } from '../helpers/processes';
import { connectTestClient, startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { metricValue } from '../fakes/metrics';
import { parseAddress, startPartitionProxy, type PartitionProxy } from '../fakes/partition-proxy';

/**
 * The paid-call guard's reuse of a stored Gemini response
 * (activities/gemini-generate.ts), under a real SIGKILL at the one point
 * where only the guard can save the money: the response is committed in
 * PostgreSQL, but Temporal never heard that the activity completed, so it
 * runs the activity again.
 *
 * To stop the completion exactly there, the worker process reaches Temporal
 * through a proxy the test partitions while the fake Gemini holds its answer;
 * then the answer is released, the worker commits the response (PostgreSQL is
 * reached directly) and its completion goes nowhere. The kill follows; Temporal
 * notices the dead attempt by its missing heartbeats and retries it on a new worker.
 */
describe('the paid-call guard after a worker dies between storing the answer and reporting it', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let proxy: PartitionProxy;
  let child: RunningProcess | undefined;
  let replacement: TestWorker | undefined;
  const taskQueue = uniqueTaskQueue('guard-crash');

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    api = await startTestApi({ pool, temporal, taskQueue });
    tenant = await createApiTenant(pool);
    proxy = await startPartitionProxy(parseAddress(testInfra().temporalAddress));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await replacement?.stop();
    await proxy.close();
    await api.close();
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  const pendingActivity = async (workflowId: string) =>
    (await temporal.workflow.getHandle(workflowId).describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'generateWithGemini');

  it('reuses the stored response on the retry: one paid call, one bill, one event, and the avoided call is counted', async () => {
    const infra = testInfra();
    child = startProcess('worker', {
      DATABASE_URL: infra.databaseUrl,
      TEMPORAL_ADDRESS: proxy.address,
      TEMPORAL_NAMESPACE: infra.temporalNamespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      GEMINI_BASE_URL: gemini.url,
      GEMINI_API_KEY: '',
      WORKER_METRICS_PORT: String(await findFreePort()),
      WORKER_SDK_METRICS_PORT: String(await findFreePort()),
      LOG_LEVEL: 'info',
    });
    await child.waitForOutput(/worker polling/, 120_000);

    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const key = randomUUID();
    const body = { prompt: 'paid once, reported never' };
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body });
    expect(created.status).toBe(202);
    const workflowId: string = created.json!.workflowId;
    const { operation_id: operationId } = (await pool.query<{ operation_id: string }>(
      'SELECT operation_id FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0]!;

    // Gemini has the call; from now on nothing the worker says reaches Temporal.
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);
    proxy.partition();
    expect(await fake.release()).toBe(1);
    await eventually('the guard to commit the Gemini response', async () =>
      (await pool.query(`SELECT 1 FROM effects WHERE operation_id = $1 AND step = 'gemini:gemini-2.5-flash'`, [operationId])).rowCount === 1);
    // The kill point: the response is stored, the activity is still running as far as Temporal knows.
    expect(await pendingActivity(workflowId)).toMatchObject({ attempt: 1, state: proto.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED });
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');

    // Temporal gives up on the dead attempt because its heartbeats stopped (not at the 2-minute start-to-close).
    const retried = await eventually('Temporal to time out the dead attempt', async () => {
      const activity = await pendingActivity(workflowId);
      return activity?.lastFailure?.timeoutFailureInfo ? activity : undefined;
    }, 90_000);
    expect(retried.lastFailure!.timeoutFailureInfo!.timeoutType).toBe(proto.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT);

    replacement = await startTestWorker({ pool, taskQueue, geminiBaseUrl: gemini.url });
    await eventually('the operation to succeed on the new worker', async () =>
      (await pool.query('SELECT status FROM operations WHERE operation_id = $1', [operationId])).rows[0].status === 'succeeded', 120_000);

    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect((await pool.query('SELECT 1 FROM usage_ledger WHERE operation_id = $1', [operationId])).rows).toHaveLength(1);
    expect((await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows.map((r) => r.event_type)).toEqual(['operation.succeeded']);
    expect(await metricValue(replacement.metricsRegistry, 'onceflow_gemini_calls_avoided_total', { model: 'gemini-2.5-flash' })).toBe(1);
    expect(await metricValue(replacement.metricsRegistry, 'onceflow_gemini_calls_total')).toBe(0);
    const final = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body });
    expect(final.status).toBe(200);
    expect(final.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['succeeded']);
  }, 300_000);
});
