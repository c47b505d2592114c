import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { temporalScheduleId } from '../../src/schedules/temporal';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';
import { until } from '../helpers/until';
import { cliEnv, expectExit, parseJson, runCli } from '../cli/run-cli';

const INTERVAL_SECONDS = 2;

/**
 * Scheduled operations against the real stack: the API in this process, a
 * real worker process (so it can be SIGKILLed), the run's Temporal dev server
 * and PostgreSQL, the offline model server.
 */
jest.setTimeout(300_000);

describe('scheduled operations', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let worker: RunningProcess | undefined;
  const taskQueue = uniqueTaskQueue('schedules');
  const created: string[] = [];

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    api = await startTestApi({ pool, temporal, taskQueue });
    tenant = await createApiTenant(pool, 'sched');
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url });
  });
  afterAll(async () => {
    for (const id of created) await temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, id)).delete().catch(() => undefined);
    worker?.kill('SIGKILL');
    await api.close();
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  async function request(method: string, path: string, options: { body?: unknown; key?: string } = {}) {
    const headers: Record<string, string> = { authorization: `Bearer ${tenant.apiKey}` };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.key) headers['idempotency-key'] = options.key;
    const response = await fetch(`${api.baseUrl}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  }

  async function createScheduleOverHttp(body: Record<string, unknown>, key = randomUUID()) {
    const answer = await request('POST', '/v1/schedules', { key, body });
    expect(answer.status).toBe(201);
    created.push(answer.json!.id as string);
    return answer.json!;
  }

  /** The slot operations of a schedule, by key, with how many outbox events each produced. */
  async function slotOperations(scheduleId: string) {
    const { rows } = await pool.query<{ idempotency_key: string; status: string; events: string }>(
      `SELECT o.idempotency_key, o.status, (SELECT count(*) FROM outbox_events e WHERE e.aggregate_id = o.operation_id::text) AS events
         FROM operations o WHERE o.tenant_id = $1 AND o.idempotency_key LIKE $2 ORDER BY o.idempotency_key`,
      [tenant.tenantId, `schedule:${scheduleId}:%`],
    );
    return rows.map((row) => ({ key: row.idempotency_key, status: row.status, events: Number(row.events), nominalMs: Date.parse(row.idempotency_key.slice(`schedule:${scheduleId}:`.length)) }));
  }

  it('creates a schedule once per key, refuses the key with another body, and validates the input before creating anything', async () => {
    const body = { operationType: 'generate-content', input: { prompt: 'daily digest' }, spec: { intervalSeconds: 3600 } };
    const key = randomUUID();
    const first = await createScheduleOverHttp(body, key);
    const repeat = await request('POST', '/v1/schedules', { key, body });
    expect(repeat.status).toBe(200);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.json!.id).toBe(first.id);
    const reused = await request('POST', '/v1/schedules', { key, body: { ...body, input: { prompt: 'weekly digest' } } });
    expect(reused.status).toBe(422);
    expect(reused.json!.type).toBe('https://onceflow.dev/problems/idempotency-key-reused');

    const invalid = await request('POST', '/v1/schedules', { key: randomUUID(), body: { ...body, input: { prompt: '' } } });
    expect(invalid.status).toBe(400);
    expect(invalid.json!.issues[0].path).toBe('/input/prompt');
    expect((await request('POST', '/v1/schedules', { body })).status).toBe(400);
    // The model allowlist holds for schedules as over HTTP.
    const notAllowed = await request('POST', '/v1/schedules', { key: randomUUID(), body: { ...body, input: { prompt: 'x', model: 'gemini-9-ultra' } } });
    expect(notAllowed.status).toBe(400);
    expect(notAllowed.json!.issues[0].path).toBe('/input/model');
    expect((await request('POST', '/v1/schedules', { key: randomUUID(), body: { ...body, operationType: 'nope' } })).status).toBe(404);
    expect((await request('POST', '/v1/schedules', { key: randomUUID(), body: { ...body, spec: { intervalSeconds: 60, cron: '* * * * *' } } })).status).toBe(400);
    expect((await request('POST', '/v1/schedules', { key: randomUUID(), body: { ...body, spec: { cron: '0 9 * * *', timeZone: 'Mars/Olympus' } } })).status).toBe(400);

    // A cron expression only Temporal parses: refused, and the key is free again for the fixed request.
    const badCronKey = randomUUID();
    const badCron = await request('POST', '/v1/schedules', { key: badCronKey, body: { ...body, spec: { cron: 'every blue moon' } } });
    expect(badCron.status).toBe(400);
    expect(badCron.json!.issues[0].path).toBe('/spec/cron');
    const fixed = await request('POST', '/v1/schedules', { key: badCronKey, body: { ...body, spec: { cron: '0 9 * * MON-FRI', timeZone: 'Europe/Paris' } } });
    expect(fixed.status).toBe(201);
    created.push(fixed.json!.id as string);
    expect((await request('PATCH', `/v1/schedules/${fixed.json!.id}`, { body: { spec: { cron: 'not a cron' } } })).status).toBe(400);
    expect((await request('GET', '/v1/schedules?cursor=bm90IGEgY3Vyc29y')).status).toBe(400);

    const read = await request('GET', `/v1/schedules/${first.id}`);
    expect(read.status).toBe(200);
    expect(read.json!.state).toBe('active');
    expect(read.json!.nextSlots.length).toBeGreaterThan(0);
    const description = await temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, first.id)).describe();
    expect(description.state.note).toContain(`Onceflow schedule ${first.id}: generate-content every 3600 s`);

    const list = await request('GET', '/v1/schedules?limit=1');
    expect(list.status).toBe(200);
    expect(list.json!.data).toHaveLength(1);
    // Another tenant sees none of it.
    const other = await createApiTenant(pool, 'sched-other');
    const foreign = await fetch(`${api.baseUrl}/v1/schedules/${first.id}`, { headers: { authorization: `Bearer ${other.apiKey}` } });
    expect(foreign.status).toBe(404);

    // The operator CLI lists them.
    const cli = await runCli(['schedules', 'list', '--tenant', tenant.tenantId, '--json']);
    expectExit(cli, 0);
    expect(parseJson(cli).map((row: { scheduleId: string }) => row.scheduleId)).toEqual(expect.arrayContaining([first.id, fixed.json!.id]));
    // And creates one for the tenant through the same use case: one schedule per key, the same Temporal Schedule.
    const cliEnvironment = cliEnv({ TEMPORAL_TASK_QUEUE: taskQueue });
    const createArgs = (input: string) => ['schedules', 'create', '--tenant', tenant.tenantId, '--key', 'cli-nightly', '--type', 'generate-content',
      '--input', input, '--cron', '0 2 * * *', '--time-zone', 'Europe/Paris', '--paused', '--json'];
    const made = await runCli(createArgs('{"prompt":"nightly digest"}'), cliEnvironment);
    expectExit(made, 0);
    const madeId = parseJson(made).scheduleId as string;
    created.push(madeId);
    expect(parseJson(made)).toMatchObject({ created: true, tenantId: tenant.tenantId, operationType: 'generate-content', paused: true });
    const madeAgain = await runCli(createArgs('{"prompt":"nightly digest"}'), cliEnvironment);
    expectExit(madeAgain, 0);
    expect(parseJson(madeAgain)).toMatchObject({ created: false, scheduleId: madeId });
    const overHttp = await request('GET', `/v1/schedules/${madeId}`);
    expect({ status: overHttp.status, state: overHttp.json!.state }).toEqual({ status: 200, state: 'paused' });
    expect((await temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, madeId)).describe()).state.paused).toBe(true);
    const cliReused = await runCli(createArgs('{"prompt":"another digest"}'), cliEnvironment);
    expectExit(cliReused, 2);
    expect(cliReused.stderr).toContain(`already created schedule ${madeId}`);
    const noTenant = await runCli(['schedules', 'create', '--tenant', 'no-such-tenant', '--key', randomUUID(), '--type', 'generate-content', '--input', '{"prompt":"x"}', '--every', '3600'], cliEnvironment);
    expectExit(noTenant, 3);
    const bothSpecs = await runCli(['schedules', 'create', '--tenant', tenant.tenantId, '--key', randomUUID(), '--type', 'generate-content', '--input', '{"prompt":"x"}', '--every', '60', '--cron', '* * * * *'], cliEnvironment);
    expectExit(bothSpecs, 2);
    expect(bothSpecs.stderr).toContain('exactly one of cron or intervalSeconds');

    expect((await request('DELETE', `/v1/schedules/${first.id}`)).status).toBe(204);
    expect((await request('GET', `/v1/schedules/${first.id}`)).status).toBe(404);
    await expect(temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, first.id)).describe()).rejects.toThrow();
  });

  it('a backfill over a past range starts each slot once, even when requested twice', async () => {
    const schedule = await createScheduleOverHttp({ operationType: 'generate-content', input: { prompt: 'backfilled' }, spec: { intervalSeconds: 60 } });
    const end = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 60_000);
    const start = new Date(end.getTime() - 5 * 60_000);
    const range = { start: start.toISOString(), end: end.toISOString() };
    const handle = temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, schedule.id));
    const inRange = async () => (await slotOperations(schedule.id)).filter((op) => op.nominalMs >= start.getTime() && op.nominalMs < end.getTime());
    expect((await request('POST', `/v1/schedules/${schedule.id}/backfill`, { body: range })).status).toBe(202);
    await until(async () => (await inRange()).filter((op) => op.status === 'succeeded').length === 5, 'the five backfilled slots done', 150_000);
    const takenOnce = (await handle.describe()).info.numActionsTaken;
    // The same backfill again, after the first one's slot runs closed: Temporal runs every slot again.
    expect((await request('POST', `/v1/schedules/${schedule.id}/backfill`, { body: range })).status).toBe(202);
    await until(async () => (await handle.describe()).info.numActionsTaken >= takenOnce + 5, 'the second backfill taken', 150_000);
    await until(async () => (await temporal.workflow.count(`WorkflowType = 'scheduledSlotWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`)).count === 0, 'slot runs closed', 150_000);
    const operations = await slotOperations(schedule.id);
    const nominal = operations.map((operation) => operation.nominalMs).filter((ms) => ms >= start.getTime() && ms <= end.getTime());
    expect(new Set(nominal).size).toBe(nominal.length);
    expect(nominal.length).toBeGreaterThanOrEqual(5);
    for (const ms of nominal) expect(ms % 60_000).toBe(0);
    // The second backfill's slot runs attached to the first one's operations: one outcome event and one workflow run each.
    await until(async () => (await slotOperations(schedule.id)).every((op) => op.status === 'succeeded' && op.events === 1), 'every slot operation done with its event', 150_000);
    const { rows: runs } = await pool.query<{ workflow_id: string }>(`SELECT workflow_id FROM operations WHERE tenant_id = $1 AND idempotency_key LIKE $2`, [tenant.tenantId, `schedule:${schedule.id}:%`]);
    for (const { workflow_id: workflowId } of runs) expect((await temporal.workflow.count(`WorkflowId = '${workflowId}'`)).count).toBe(1);
    // Each one is an ordinary operation: readable, and replayed to an HTTP repeat of its key.
    const first = operations[0]!;
    await until(async () => (await pool.query(`SELECT 1 FROM operations WHERE tenant_id = $1 AND idempotency_key = $2 AND status = 'succeeded'`, [tenant.tenantId, first.key])).rowCount === 1, 'first slot operation succeeded', 120_000);
    const read = await request('GET', `/v1/operations/generate-content/${encodeURIComponent(first.key)}`);
    expect(read.status).toBe(200);
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: first.key, body: { prompt: 'backfilled' } });
    expect(repeat.status).toBe(200);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.json!.workflowId).toBe(read.json!.workflowId);
  });

  it('runs every slot once through a worker SIGKILL, slots that fell due while it was dead included, and pausing stops new slots', async () => {
    const schedule = await createScheduleOverHttp({ operationType: 'generate-content', input: { prompt: 'every two seconds' }, spec: { intervalSeconds: INTERVAL_SECONDS } });
    await until(async () => (await slotOperations(schedule.id)).filter((op) => op.status === 'succeeded').length >= 2, 'two slots done', 120_000);

    worker!.kill('SIGKILL');
    expect(await worker!.exited).toBe('SIGKILL');
    const killedAtMs = Date.now();
    // Slots keep falling due while no worker runs: Temporal starts their slot runs, nobody executes them yet.
    await until(() => Date.now() - killedAtMs > 3 * INTERVAL_SECONDS * 1000, 'three slots due with no worker', 30_000);
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url });
    await until(async () => (await slotOperations(schedule.id)).filter((op) => op.nominalMs > killedAtMs + 4 * INTERVAL_SECONDS * 1000).length >= 2, 'slots after the restart', 150_000);

    expect((await request('PATCH', `/v1/schedules/${schedule.id}`, { body: { paused: true } })).json!.state).toBe('paused');
    const handle = temporal.schedule.getHandle(temporalScheduleId(tenant.tenantId, schedule.id));
    const taken = (await handle.describe()).info.numActionsTaken;
    // Every slot Temporal took has its operation, finished.
    await until(async () => {
      const operations = await slotOperations(schedule.id);
      return operations.length >= taken && operations.every((op) => op.status === 'succeeded');
    }, 'every slot taken to have its operation, succeeded', 150_000);
    const atPause = await slotOperations(schedule.id);
    // Three intervals later, still no new slot.
    const pausedAtMs = Date.now();
    await until(() => Date.now() - pausedAtMs > 3 * INTERVAL_SECONDS * 1000, 'three intervals paused', 30_000);
    const operations = await slotOperations(schedule.id);
    expect(operations.map((op) => op.key)).toEqual(atPause.map((op) => op.key));
    expect((await handle.describe()).info.numActionsTaken).toBe(taken);

    // Every nominal time from the first slot to the last has exactly one operation (none lost while the
    // worker was dead), and each operation published exactly one outcome event.
    const times = operations.map((op) => op.nominalMs).sort((a, b) => a - b);
    const expected = (times.at(-1)! - times[0]!) / (INTERVAL_SECONDS * 1000) + 1;
    expect(times).toHaveLength(expected);
    for (const op of operations) expect(op.events).toBe(1);
    expect(times.some((ms) => ms > killedAtMs && ms < killedAtMs + 3 * INTERVAL_SECONDS * 1000)).toBe(true);

    const resumed = await request('PATCH', `/v1/schedules/${schedule.id}`, { body: { paused: false } });
    expect(resumed.json!.state).toBe('active');
    expect((await request('PATCH', `/v1/schedules/${schedule.id}`, { body: { paused: true } })).status).toBe(200);
  });
});
