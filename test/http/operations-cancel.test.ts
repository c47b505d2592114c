import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import type { Pool } from '../../src/db/pool';
import { fingerprint } from '../../src/idempotency/fingerprint';
import { operationWorkflowId } from '../../src/idempotency/workflow-id';
import { operationTypes } from '../../src/operations/registry';
import { PostgresOperationsRepository } from '../../src/operations/repository';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { connectTestClient, startTestWorker, type TestWorker } from '../helpers/temporal';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { OnceflowClient, OnceflowProblemError } from '../../src/client';
import { expectExit, parseJson, runCli } from '../cli/run-cli';

/**
 * POST /v1/operations/{type}/{key}/cancel (contract v1.1) over real HTTP,
 * a real worker on the real Temporal dev server and real PostgreSQL; the only
 * fake is Gemini, which holds calls open (`hold`) so that a cancel meets a
 * call in flight, and keeps background interactions running until told.
 */
describe('cancelling an operation', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let worker: TestWorker;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let other: { tenantId: string; apiKey: string };

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    // Reports wait on a 10-minute poll timer: they stay running until cancelled.
    worker = await startTestWorker({ pool, geminiBaseUrl: gemini.url, geminiTimeoutMs: 60_000, reportPolling: { initialMs: 600_000, maxMs: 600_000 } });
    api = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue });
    tenant = await createApiTenant(pool, 'cancel');
    other = await createApiTenant(pool, 'cancel-other');
  });
  beforeEach(() => fake.reset());
  afterAll(async () => {
    await fake.release().catch(() => undefined);
    await api.close();
    await worker.stop();
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  const cancel = async (type: string, key: string, apiKey = tenant.apiKey) => {
    const response = await fetch(`${api.baseUrl}/v1/operations/${type}/${encodeURIComponent(key)}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}` },
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
  };
  const get = async (type: string, key: string, apiKey = tenant.apiKey) => {
    const response = await fetch(`${api.baseUrl}/v1/operations/${type}/${encodeURIComponent(key)}`, { headers: { authorization: `Bearer ${apiKey}` } });
    return { status: response.status, json: (await response.json()) as Record<string, any> };
  };
  const operationOf = async (key: string) =>
    (await pool.query<{ operation_id: string; workflow_id: string; status: string }>(
      'SELECT operation_id, workflow_id, status FROM operations WHERE tenant_id = $1 AND idempotency_key = $2',
      [tenant.tenantId, key],
    )).rows[0]!;
  const eventsOf = async (operationId: string) =>
    (await pool.query<{ event_type: string; payload: Record<string, any> }>('SELECT event_type, payload FROM outbox_events WHERE aggregate_id = $1 ORDER BY seq', [operationId])).rows;
  const billOf = async (operationId: string) =>
    (await pool.query<{ model: string; prompt_tokens: number; output_tokens: number; total_tokens: number }>(
      'SELECT model, prompt_tokens, output_tokens, total_tokens FROM usage_ledger WHERE operation_id = $1',
      [operationId],
    )).rows;
  const canceled = (type: string, key: string) =>
    eventually('the operation to end canceled', async () => {
      const read = await get(type, key);
      return read.json.status === 'canceled' ? read.json : undefined;
    }, 60_000);

  it('abandons the Gemini call in flight: status canceled, one operation.canceled event, a zero bill, no further call, the run closed as Canceled', async () => {
    // Every answer of both models is held open: the call in flight never answers by itself.
    await fake.script([{ kind: 'ok', hold: true }, { kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'a long answer' } });
    expect(created.status).toBe(202);
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);

    const requested = await cancel('generate-content', key);
    expect(requested.status).toBe(202);
    expect(requested.json).toMatchObject({ idempotencyKey: key, status: 'running' });
    expect(requested.headers.get('location')).toBe(`/v1/operations/generate-content/${key}`);
    expect(requested.headers.get('idempotency-expires')).toBe(String(Date.parse(requested.json!.expiresAt)));

    const resource = await canceled('generate-content', key);
    expect(resource.error).toMatchObject({ type: 'operation-canceled', retryable: false });
    const { operation_id: operationId, workflow_id: workflowId } = await operationOf(key);
    const events = await eventsOf(operationId);
    expect(events.map((e) => e.event_type)).toEqual(['operation.canceled']);
    expect(events[0]!.payload).toMatchObject({ status: 'canceled', idempotencyKey: key, error: { type: 'operation-canceled' } });
    // The abandoned call never answered: nothing was paid, so the one bill is zero.
    expect(await billOf(operationId)).toEqual([{ model: 'gemini-2.5-flash', prompt_tokens: 0, output_tokens: 0, total_tokens: 0 }]);
    const attempts = await pool.query<{ outcome: string }>('SELECT outcome FROM gemini_attempts WHERE operation_id = $1', [operationId]);
    expect(attempts.rows.map((r) => r.outcome)).toEqual(['unavailable']);
    // The run is closed, and it made no call after the cancel (no retry, no fallback model).
    const description = await temporal.workflow.getHandle(workflowId).describe();
    expect(description.status.name).toBe('CANCELLED');
    expect(await fake.calls({ paid: true })).toHaveLength(1);
  });

  it('answers a second cancel without doing anything twice: 202 while under way, then 200 with the canceled operation; one event', async () => {
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);
    expect((await cancel('generate-content', key)).status).toBe(202);
    const again = await cancel('generate-content', key);
    // Either still under way (202) or already ended (200): never an error, never a second outcome.
    expect([200, 202]).toContain(again.status);
    await canceled('generate-content', key);
    const after = await cancel('generate-content', key);
    expect(after.status).toBe(200);
    expect(after.json).toMatchObject({ idempotencyKey: key, status: 'canceled', error: { type: 'operation-canceled' } });
    const { operation_id: operationId, workflow_id: workflowId } = await operationOf(key);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
    const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
    const cancelRequests = history.events!.filter((event) => event.workflowExecutionCancelRequestedEventAttributes);
    expect(cancelRequests).toHaveLength(1);
  });

  it('leaves a finished operation as it is: 200 with its result, no canceled event, the key still replays the success', async () => {
    const key = randomUUID();
    const done = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=30' } });
    expect(done.status).toBe(200);
    const answer = await cancel('generate-content', key);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ status: 'succeeded', result: done.json!.result });
    const { operation_id: operationId } = await operationOf(key);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.succeeded']);
    expect(await billOf(operationId)).toHaveLength(1);
    const replay = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    expect(replay.status).toBe(200);
    expect(replay.json!.result).toEqual(done.json!.result);
  });

  it('replays the canceled outcome to repeats of the key: 410 operation-canceled, Idempotent-Replayed, and GET shows canceled', async () => {
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'to be canceled' } });
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);
    await cancel('generate-content', key);
    await canceled('generate-content', key);

    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'to be canceled' } });
    expect(repeat.status).toBe(410);
    expect(repeat.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.json).toMatchObject({
      type: 'https://onceflow.dev/problems/operation-canceled', status: 410, idempotencyKey: key,
      operation: { status: 'canceled' },
    });
    // The replay started nothing: still the one call.
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    const read = await get('generate-content', key);
    expect(read.status).toBe(200);
    expect(read.json.status).toBe('canceled');
    const listed = await fetch(`${api.baseUrl}/v1/operations?status=canceled&limit=100`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
    const page = (await listed.json()) as { data: { idempotencyKey: string; status: string }[] };
    expect(page.data.find((item) => item.idempotencyKey === key)).toMatchObject({ status: 'canceled' });
    expect(page.data.every((item) => item.status === 'canceled')).toBe(true);
  });

  it("answers 404 for an unknown key (whatever body comes with the request), an unknown type and another tenant's key, which keeps running", async () => {
    const unknown = await cancel('generate-content', randomUUID());
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ type: 'https://onceflow.dev/problems/operation-not-found' });
    expect((await cancel('no-such-type', 'k')).json).toMatchObject({ status: 404, type: 'https://onceflow.dev/problems/unknown-operation-type' });
    // No body is read: an empty one labelled JSON, a JSON one or a text one changes nothing (no 400, no 415).
    for (const [contentType, body] of [['application/json', ''], ['application/json', '{"reason":"x"}'], ['text/plain', 'x']] as const) {
      const answer = await fetch(`${api.baseUrl}/v1/operations/generate-content/${randomUUID()}/cancel`, {
        method: 'POST', headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': contentType }, body,
      });
      expect({ contentType, body, status: answer.status }).toEqual({ contentType, body, status: 404 });
      await answer.arrayBuffer();
    }
    const tooLarge = await fetch(`${api.baseUrl}/v1/operations/generate-content/${randomUUID()}/cancel`, {
      method: 'POST', headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'application/json' }, body: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(tooLarge.status).toBe(413);

    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);
    const foreign = await cancel('generate-content', key, other.apiKey);
    expect(foreign.status).toBe(404);
    expect(foreign.json).toMatchObject({ type: 'https://onceflow.dev/problems/operation-not-found' });
    const { workflow_id: workflowId } = await operationOf(key);
    const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
    expect(history.events!.some((event) => event.workflowExecutionCancelRequestedEventAttributes)).toBe(false);
    await fake.release();
    expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, headers: { prefer: 'wait=30' } })).status).toBe(200);
  });

  it('generate-report: cancels the submitted background interaction at Gemini; a zero bill', async () => {
    await fake.interactions({ hold: true });
    const key = randomUUID();
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body: { prompt: 'a report nobody will read' } });
    expect(created.status).toBe(202);
    const interaction = await eventually('the interaction to be submitted', async () => (await fake.listInteractions())[0]);
    await eventually('the interaction id in the ledger', async () =>
      (await pool.query('SELECT 1 FROM gemini_interactions WHERE interaction_id = $1', [interaction.id])).rowCount === 1);

    expect((await cancel('generate-report', key)).status).toBe(202);
    const resource = await canceled('generate-report', key);
    expect(resource.error.detail).toContain('cancelled');
    expect((await fake.listInteractions())[0]!.status).toBe('cancelled');
    expect((await fake.calls()).filter((c) => c.operation === 'interactions.cancel')).toHaveLength(1);
    const { operation_id: operationId } = await operationOf(key);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
    expect(await billOf(operationId)).toEqual([{ model: 'gemini-2.5-flash', prompt_tokens: 0, output_tokens: 0, total_tokens: 0 }]);
    const ledger = await pool.query('SELECT status, completed_by FROM gemini_interactions WHERE interaction_id = $1', [interaction.id]);
    expect(ledger.rows[0]).toEqual({ status: 'failed', completed_by: 'cancel' });
  });

  it('generate-report: bills what Gemini reports for an interaction that had already finished when the cancel came', async () => {
    await fake.interactions({ hold: true });
    const key = randomUUID();
    const prompt = 'a report that finished just before the cancel';
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body: { prompt } });
    const interaction = await eventually('the interaction to be submitted', async () => (await fake.listInteractions())[0]);
    await eventually('the interaction id in the ledger', async () =>
      (await pool.query('SELECT 1 FROM gemini_interactions WHERE interaction_id = $1', [interaction.id])).rowCount === 1);
    // Finished at Gemini; the workflow's next poll is 10 minutes away, so it does not know yet.
    await fake.complete(interaction.id);

    expect((await cancel('generate-report', key)).status).toBe(202);
    await canceled('generate-report', key);
    const { operation_id: operationId } = await operationOf(key);
    // The offline server's usage: a quarter of the prompt's and of the report's characters.
    const inputTokens = Math.ceil(prompt.length / 4);
    const bill = await billOf(operationId);
    expect(bill).toHaveLength(1);
    expect(bill[0]!.prompt_tokens).toBe(inputTokens);
    expect(bill[0]!.output_tokens).toBeGreaterThan(0);
    expect(bill[0]!.total_tokens).toBe(bill[0]!.prompt_tokens + bill[0]!.output_tokens);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
  });

  it('works through the client SDK: cancel, follow to canceled, a repeat cancel changes nothing, the key replays 410, others get 404', async () => {
    const client = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: tenant.apiKey, retry: { maxAttempts: 2 } });
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const started = await client.operations.generateContent({ prompt: 'cancelled through the SDK' });
    expect(started.status).toBe(202);
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);

    const requested = await client.cancel('generate-content', started.idempotencyKey);
    expect(requested).toMatchObject({ status: 202, operation: { status: 'running', idempotencyKey: started.idempotencyKey } });
    expect(requested.expiresAt?.toISOString()).toBe(requested.operation.expiresAt);
    await eventually('the SDK to read canceled', async () => (await client.get('generate-content', started.idempotencyKey)).status === 'canceled', 60_000);
    const again = await client.cancel('generate-content', started.idempotencyKey);
    expect(again).toMatchObject({ status: 200, operation: { status: 'canceled' } });

    const replay = client.operations.generateContent({ prompt: 'cancelled through the SDK' }, { idempotencyKey: started.idempotencyKey });
    await expect(replay).rejects.toBeInstanceOf(OnceflowProblemError);
    await expect(replay).rejects.toMatchObject({ status: 410, replayed: true, body: { type: 'https://onceflow.dev/problems/operation-canceled' } });
    const foreign = new OnceflowClient({ baseUrl: api.baseUrl, apiKey: other.apiKey, retry: { maxAttempts: 1 } }).cancel('generate-content', started.idempotencyKey);
    await expect(foreign).rejects.toMatchObject({ status: 404 });
    const { operation_id: operationId } = await operationOf(started.idempotencyKey);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
  });

  it('works through the operator CLI: onceflow ops cancel <type> <key> requests it, a second says already canceled, an unknown key exits 3', async () => {
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'cancelled by an operator' } });
    await eventually('the Gemini call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);

    const first = await runCli(['ops', 'cancel', 'generate-content', key, '--tenant', tenant.tenantId, '--json']);
    expectExit(first, 0);
    expect(parseJson(first)).toMatchObject({ cancel: 'requested', tenantId: tenant.tenantId, idempotencyKey: key });
    await canceled('generate-content', key);
    const second = await runCli(['ops', 'cancel', 'generate-content', key]);
    expectExit(second, 0);
    expect(second.stdout).toContain('already canceled');
    expectExit(await runCli(['ops', 'cancel', 'generate-content', `missing-${randomUUID()}`]), 3);
    const { operation_id: operationId } = await operationOf(key);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
  });

  it('stops a run waiting out a 429 backoff at once: the retry is never made, one paid call, a zero bill', async () => {
    // The server's retry delay (30 s) is far beyond the test's wait: only the cancel can end this run.
    await fake.script([{ kind: 'error', status: 429, retryDelaySeconds: 30 }], '*');
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    const { operation_id: operationId } = await operationOf(key);
    await eventually('the 429 attempt to be recorded', async () =>
      (await pool.query(`SELECT 1 FROM gemini_attempts WHERE operation_id = $1 AND outcome = 'rate_limited'`, [operationId])).rowCount === 1);
    expect((await cancel('generate-content', key)).status).toBe(202);
    // No call in flight: the scheduled retry is cancelled by the server, without a heartbeat round.
    await eventually('the operation to end canceled', async () => (await get('generate-content', key)).json.status === 'canceled', 10_000);
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
    expect(await billOf(operationId)).toEqual([{ model: 'gemini-2.5-flash', prompt_tokens: 0, output_tokens: 0, total_tokens: 0 }]);
  });

  it('cancels a reservation whose start was never confirmed: its run is started, then cancelled like any other', async () => {
    // The row a facade leaves when it dies (or Temporal refuses) between reserving the key and starting the run.
    // Its call is held, so that the cancel (sent right after the start) meets it in flight rather than racing its answer.
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    const input = { prompt: 'reserved, never started' };
    const nowMs = Date.now();
    await new PostgresOperationsRepository(pool).reserve({
      tenantId: tenant.tenantId, operationType: 'generate-content', idempotencyKey: key, operationId: randomUUID(),
      fingerprint: fingerprint(input, operationTypes['generate-content'].nonEssentialFields), workflowId: operationWorkflowId(tenant.tenantId, 'generate-content', key),
      input, nowMs, expiresAtMs: nowMs + 3_600_000,
    });
    expect((await operationOf(key)).status).toBe('reserved');

    const requested = await cancel('generate-content', key);
    expect(requested.status).toBe(202);
    expect(requested.json!.runId).toEqual(expect.any(String));
    await canceled('generate-content', key);
    expect((await fake.calls({ paid: true })).length).toBeLessThanOrEqual(1);
    const { operation_id: operationId, workflow_id: workflowId } = await operationOf(key);
    expect((await eventsOf(operationId)).map((e) => e.event_type)).toEqual(['operation.canceled']);
    expect((await temporal.workflow.getHandle(workflowId).describe()).status.name).toBe('CANCELLED');
  });

  it('is documented in the OpenAPI document for every operation type: 200, 202 and 404, and the 410 replay', async () => {
    const doc = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as any;
    for (const type of ['generate-content', 'generate-report']) {
      const cancelDoc = doc.paths[`/v1/operations/${type}/{key}/cancel`].post;
      expect(Object.keys(cancelDoc.responses)).toEqual(expect.arrayContaining(['200', '202', '404', '503']));
      expect(cancelDoc.responses['202'].content['application/json'].schema.properties.status.enum).toContain('canceled');
      expect(cancelDoc.description).toContain('operation-canceled');
      expect(cancelDoc.requestBody).toBeUndefined();
      expect(Object.keys(doc.paths[`/v1/operations/${type}`].post.responses)).toContain('410');
    }
  });
});
