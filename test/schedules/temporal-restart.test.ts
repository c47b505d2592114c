import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { keepTemporal, type Keeper, type KeptTemporalInfo } from '../../dev/keeper';
import { findFreePort } from '../../dev/ports';
import { resolveTemporalBinary } from '../../dev/temporal-binary';
import { temporalScheduleId } from '../../src/schedules/temporal';
import { createApiTenant, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { uniqueTaskQueue } from '../helpers/temporal';
import { until } from '../helpers/until';
import { metricValue } from '../queue/helpers';

const INTERVAL_SECONDS = 2;
const CATCHUP_WINDOW_SECONDS = 120;

/**
 * A schedule every two seconds through a worker SIGKILL and a SIGKILL of the
 * Temporal server itself. The run's shared dev server keeps its state in
 * memory, so this file runs a dev server of its own on a SQLite file (under a
 * keeper, so a killed jest leaves it not running) and starts it again on the
 * same file and port, as `onceflow start` does after a crash. The slots that fell due while Temporal was down are caught up when it
 * comes back (they are inside the catch-up window), each as one operation.
 */
jest.setTimeout(400_000);

describe('a schedule through a worker kill and a Temporal restart', () => {
  let pool: Pool;
  let temporalServer: Keeper<KeptTemporalInfo> | undefined;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let worker: RunningProcess | undefined;
  let workerMetricsPort = 0;
  const taskQueue = uniqueTaskQueue('schedules-restart');
  const dbFilename = path.join(testInfra().stateDir, `temporal-restart-${randomUUID()}.sqlite`);

  /** Stops the dev server (the SDK's server manager ends it with SIGKILL), keeps it down for `downMs`, starts it on the same file and port. */
  async function restartTemporal(downMs: number): Promise<void> {
    await temporalServer!.command({ action: 'stop-server' });
    await sleep(downMs);
    await temporalServer!.command({ action: 'start-server' });
  }

  beforeAll(async () => {
    const toolsDir = path.join(__dirname, '../../.onceflow/tools');
    const binary = await resolveTemporalBinary({ explicitPath: testInfra().temporalBinary, toolsDir, log: () => undefined });
    temporalServer = await keepTemporal({ binary, port: await findFreePort(), dbFilename, downloadDir: toolsDir }, { logFile: `${dbFilename}.log` });
    pool = createTestPool();
    temporal = new Client({ connection: await Connection.connect({ address: temporalServer.info.address }), namespace: temporalServer.info.namespace });
    gemini = await startOfflineGeminiServer();
    api = await startTestApi({ pool, temporal, taskQueue });
    tenant = await createApiTenant(pool, 'sched-restart');
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, temporalAddress: temporalServer.info.address });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await api?.close();
    await gemini?.close();
    await temporal?.connection.close();
    await temporalServer?.stop();
    await pool?.end();
  });

  async function request(method: string, urlPath: string, body?: unknown) {
    const headers: Record<string, string> = { authorization: `Bearer ${tenant.apiKey}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method === 'POST') headers['idempotency-key'] = randomUUID();
    const response = await fetch(`${api.baseUrl}${urlPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    return { status: response.status, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  }

  /** The schedule's slot operations, with how many workflow runs, Gemini calls and outcome events each one had. */
  async function slotOperations(scheduleId: string) {
    const prefix = `schedule:${scheduleId}:`;
    const { rows } = await pool.query<{ idempotency_key: string; status: string; workflow_id: string; events: string }>(
      `SELECT o.idempotency_key, o.status, o.workflow_id,
              (SELECT count(*) FROM outbox_events e WHERE e.aggregate_id = o.operation_id::text) AS events
         FROM operations o WHERE o.tenant_id = $1 AND o.idempotency_key LIKE $2 ORDER BY o.idempotency_key`,
      [tenant.tenantId, `${prefix}%`],
    );
    return rows.map((row) => ({
      key: row.idempotency_key,
      status: row.status,
      workflowId: row.workflow_id,
      events: Number(row.events),
      nominalMs: Date.parse(row.idempotency_key.slice(prefix.length)),
    }));
  }

  it('runs each slot once: none lost while the worker was dead or Temporal was down, none twice', async () => {
    const created = await request('POST', '/v1/schedules', {
      operationType: 'generate-content',
      input: { prompt: 'through a Temporal restart' },
      spec: { intervalSeconds: INTERVAL_SECONDS, catchupWindowSeconds: CATCHUP_WINDOW_SECONDS },
    });
    expect(created.status).toBe(201);
    const scheduleId = created.json!.id as string;
    await until(async () => (await slotOperations(scheduleId)).filter((op) => op.status === 'succeeded').length >= 2, 'two slots done', 120_000);

    // The worker first, so the slots due from here on are started by Temporal with nobody to run them.
    worker!.kill('SIGKILL');
    expect(await worker!.exited).toBe('SIGKILL');
    worker = undefined;
    await sleep(INTERVAL_SECONDS * 1000 + 500);
    // Then Temporal itself, its state file kept.
    const downFromMs = Date.now();
    await restartTemporal(4 * INTERVAL_SECONDS * 1000);
    const downUntilMs = Date.now();
    workerMetricsPort = await findFreePort();
    // The overlap tests hold one model call while slots come due: longer than the default 30 s cut, even on a busy machine.
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, temporalAddress: temporalServer!.info.address, metricsPort: workerMetricsPort, env: { GEMINI_REQUEST_TIMEOUT_MS: '75000' } });
    await until(async () => (await slotOperations(scheduleId)).filter((op) => op.nominalMs > downUntilMs + 2 * INTERVAL_SECONDS * 1000).length >= 2, 'slots after the restart', 200_000);

    // Then Temporal alone, SIGKILLed while the worker runs, once just as a slot falls due and once a
    // little after (the scheduler may be starting that slot's run): the worker rides through both.
    for (const phaseMs of [0, 120]) {
      const periodMs = INTERVAL_SECONDS * 1000;
      await sleep(1500);
      await sleep(periodMs - (Date.now() % periodMs) + phaseMs);
      await restartTemporal(3 * periodMs);
    }
    const lastUpMs = Date.now();
    await until(async () => (await slotOperations(scheduleId)).filter((op) => op.nominalMs > lastUpMs + 2 * INTERVAL_SECONDS * 1000).length >= 2, 'slots after the last restart', 200_000);
    expect(worker!.child.exitCode).toBeNull();

    const paused = await request('PATCH', `/v1/schedules/${scheduleId}`, { paused: true });
    expect(paused.json!.state).toBe('paused');
    const handle = temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, scheduleId));
    // Slot runs never wait for or skip each other in Temporal (src/schedules/spec.ts, OverlapPolicies).
    expect((await handle.describe()).policies.overlap).toBe('ALLOW_ALL');
    const taken = (await handle.describe()).info.numActionsTaken;
    await until(async () => {
      const operations = await slotOperations(scheduleId);
      return operations.length >= taken && operations.every((op) => op.status === 'succeeded');
    }, 'every slot Temporal took to have its operation, succeeded', 200_000);

    const operations = await slotOperations(scheduleId);
    const times = operations.map((op) => op.nominalMs).sort((a, b) => a - b);
    const firstMs = times[0]!;
    const lastMs = times.at(-1)!;
    // Every nominal time of the spec from the first slot to the last: the slots that fell due
    // while the worker was dead and while Temporal was down (all inside the catch-up window) included.
    const expected: number[] = [];
    for (let ms = firstMs; ms <= lastMs; ms += INTERVAL_SECONDS * 1000) expected.push(ms);
    expect(times).toEqual(expected);
    const whileDown = expected.filter((ms) => ms >= downFromMs && ms < downUntilMs);
    expect(whileDown.length).toBeGreaterThanOrEqual(3);
    // Each ran once: one workflow run of its operation, one outcome event, one model call.
    for (const op of operations) expect(op.events).toBe(1);
    for (const op of operations) {
      const { count } = await temporal.workflow.count(`WorkflowId = '${op.workflowId}'`);
      expect({ key: op.key, runs: count }).toEqual({ key: op.key, runs: 1 });
    }
    expect(gemini.calls().length).toBe(operations.length);
  });

  /**
   * Holds the next model call until released (the first slot's operation keeps
   * running), then creates a schedule with `overlap`; returns its id.
   */
  async function scheduleBehindHeldCall(prompt: string, overlap: 'skip' | 'buffer_all'): Promise<string> {
    const script = await fetch(`${gemini.url}/__control/script`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: '*', responses: [{ kind: 'ok', hold: true }] }),
    });
    expect(script.ok).toBe(true);
    const created = await request('POST', '/v1/schedules', {
      operationType: 'generate-content',
      input: { prompt },
      spec: { intervalSeconds: INTERVAL_SECONDS, catchupWindowSeconds: CATCHUP_WINDOW_SECONDS, overlap },
    });
    expect(created.status).toBe(201);
    return created.json!.id as string;
  }

  it("applies overlap 'skip' to the slots' operations: no slot starts while an earlier slot's operation runs, and Temporal drops no slot run", async () => {
    const scheduleId = await scheduleBehindHeldCall('skip while the previous one runs', 'skip');
    const handle = temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, scheduleId));
    expect((await handle.describe()).policies.overlap).toBe('ALLOW_ALL');
    const slotRuns = (status: string) => temporal.workflow.count(`WorkflowType = 'scheduledSlotWorkflow' AND TaskQueue = '${taskQueue}' AND ExecutionStatus = '${status}' AND WorkflowId STARTS_WITH 'onceflow/${tenant.tenantId}/schedule/${scheduleId}/'`);
    await until(async () => (await slotOperations(scheduleId)).length === 1, 'the first slot started its operation', 120_000);
    // Three more slot runs complete, each having started nothing.
    await until(async () => (await slotRuns('Completed')).count >= 4, 'four slot runs completed', 120_000);
    const whileHeld = await slotOperations(scheduleId);
    expect(whileHeld).toHaveLength(1);
    expect(whileHeld[0]!.status).toBe('running');

    expect((await fetch(`${gemini.url}/__control/release`, { method: 'POST' })).ok).toBe(true);
    await until(async () => (await slotOperations(scheduleId)).filter((op) => op.status === 'succeeded').length >= 3, 'slots start again once it finished', 120_000);
    expect((await request('PATCH', `/v1/schedules/${scheduleId}`, { paused: true })).status).toBe(200);
    // The operations started after the release are one per slot, none in the held window.
    const operations = await slotOperations(scheduleId);
    const [held, ...after] = operations;
    const releasedRuns = (await slotRuns('Completed')).count;
    expect(after.every((op) => op.nominalMs > held!.nominalMs + 3 * INTERVAL_SECONDS * 1000)).toBe(true);
    expect(releasedRuns).toBeGreaterThan(operations.length);
    // The worker counts each slot by outcome under entry_point=schedule, the skipped ones included.
    const metricsUrl = `http://127.0.0.1:${workerMetricsPort}/metrics`;
    const counted = { tenant: tenant.tenantId, entry_point: 'schedule' };
    expect(await metricValue(metricsUrl, 'onceflow_idempotency_requests_total', { ...counted, outcome: 'skipped' })).toBeGreaterThanOrEqual(3);
    expect(await metricValue(metricsUrl, 'onceflow_idempotency_requests_total', { ...counted, outcome: 'new' })).toBeGreaterThanOrEqual(operations.length);
  });

  it("applies overlap 'buffer_all' to the slots' operations: slots wait while an earlier slot's operation runs, then each starts its own, none dropped", async () => {
    const scheduleId = await scheduleBehindHeldCall('wait for the previous one', 'buffer_all');
    const runningSlots = () =>
      temporal.workflow.count(`WorkflowType = 'scheduledSlotWorkflow' AND ExecutionStatus = 'Running' AND WorkflowId STARTS_WITH 'onceflow/${tenant.tenantId}/schedule/${scheduleId}/'`);
    await until(async () => (await slotOperations(scheduleId)).length === 1, 'the first slot started its operation', 120_000);
    await until(async () => (await runningSlots()).count >= 3, 'three slot runs waiting', 120_000);
    expect(await slotOperations(scheduleId)).toHaveLength(1);

    expect((await fetch(`${gemini.url}/__control/release`, { method: 'POST' })).ok).toBe(true);
    await until(async () => (await slotOperations(scheduleId)).filter((op) => op.status === 'succeeded').length >= 4, 'the waiting slots started their operations', 150_000);
    expect((await request('PATCH', `/v1/schedules/${scheduleId}`, { paused: true })).status).toBe(200);
    const taken = (await temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, scheduleId)).describe()).info.numActionsTaken;
    await until(async () => {
      const operations = await slotOperations(scheduleId);
      return operations.length >= taken && operations.every((op) => op.status === 'succeeded');
    }, 'every slot taken to have its operation, succeeded', 200_000);
    const times = (await slotOperations(scheduleId)).map((op) => op.nominalMs).sort((a, b) => a - b);
    const expected: number[] = [];
    for (let ms = times[0]!; ms <= times.at(-1)!; ms += INTERVAL_SECONDS * 1000) expected.push(ms);
    expect(times).toEqual(expected);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
