import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { DEV_GEMINI_WEBHOOK_SECRET, signGeminiWebhook } from '../../src/integrations/gemini/webhooks';
import { GEMINI_WEBHOOK_CONSUMER } from '../../src/http/routes/gemini-webhooks';
import { interactionEndedSignal } from '../../workflows/definitions';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { billsOf, createTestPool, eventTypesOf } from '../helpers/db';
import { connectTestClient, type TestWorker } from '../helpers/temporal';
import { refuseInserts } from '../fakes/db-faults';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { metricValue } from '../fakes/metrics';
import { startReportWorker } from '../fakes/report-worker';

/**
 * generate-report end to end: real facade (with the webhook route), real
 * Temporal worker, the real @google/genai interactions client against the
 * offline model server, which delivers Standard-Webhooks-signed completion
 * events to the facade and counts every paid call.
 *
 * Two worker/facade pairs: `polling` polls every 500 ms and gets no webhooks;
 * `webhooks` first polls after ten minutes, so a report it finishes within the
 * test was woken by a webhook.
 */
describe('generate-report completes once, bills once and publishes once', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let tenant: { tenantId: string; apiKey: string };
  const pairs: Record<'polling' | 'webhooks', { worker: TestWorker; api: TestApi }> = {} as never;

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    for (const [name, initialMs] of [['polling', 500], ['webhooks', 600_000]] as const) {
      // A long Gemini timeout: a test may hold a read's answer for a while.
      const worker = await startReportWorker({ pool, geminiBaseUrl: gemini.url, reportPolling: { initialMs, maxMs: initialMs }, geminiTimeoutMs: 30_000 });
      const api = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue });
      pairs[name] = { worker, api };
    }
    tenant = await createApiTenant(pool);
  });
  beforeEach(() => fake.reset());
  afterAll(async () => {
    for (const { worker, api } of Object.values(pairs)) {
      await api.close();
      await worker.stop();
    }
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  const webhookUrl = () => `${pairs.webhooks.api.baseUrl}/v1/webhooks/gemini`;
  const run = (pair: 'polling' | 'webhooks', key: string, options: { wait?: number; body?: Record<string, unknown> } = {}) =>
    postOperation(pairs[pair].api.baseUrl, {
      apiKey: tenant.apiKey, key, type: 'generate-report',
      body: options.body ?? { prompt: `a report for ${key}` },
      headers: options.wait === undefined ? {} : { prefer: `wait=${options.wait}` },
    });
  const operationOf = async (key: string) =>
    (await pool.query(`SELECT operation_id, status FROM operations WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key])).rows[0];
  const bills = (key: string) => billsOf(pool, tenant.tenantId, key);
  const events = (key: string) => eventTypesOf(pool, tenant.tenantId, key);
  const ledger = async (key: string) =>
    (await pool.query(
      `SELECT g.interaction_id, g.status, g.submit_attempts, g.webhooks_received, g.completed_by
         FROM gemini_interactions g JOIN operations o USING (operation_id)
        WHERE o.tenant_id = $1 AND o.idempotency_key = $2`, [tenant.tenantId, key])).rows;
  const inboxRows = async (interactionId: string) =>
    (await pool.query(`SELECT event_id FROM inbox WHERE consumer = $1 AND event_id LIKE $2`, [GEMINI_WEBHOOK_CONSUMER, `%${interactionId}%`])).rows;
  /** The interaction the fake created for this test (each test resets the fake). */
  const heldInteraction = () => eventually('the interaction to be submitted', async () => (await fake.listInteractions())[0]);
  /** A webhook-completed report whose interaction the fake holds running (`deliveries` webhooks when it completes), submitted and in the ledger. */
  const submitHeldWithWebhook = async (deliveries = 1) => {
    await fake.interactions({ hold: true, webhook: { url: webhookUrl(), secret: DEV_GEMINI_WEBHOOK_SECRET, deliveries } });
    const key = randomUUID();
    const created = await run('webhooks', key);
    expect(created.status).toBe(202);
    const interaction = await heldInteraction();
    await eventually('the interaction id in the ledger', async () => (await ledger(key))[0]?.interaction_id === interaction.id);
    return { key, created, interaction };
  };

  it('submits one background interaction and completes by polling when no webhook comes', async () => {
    const labels = { tenant: tenant.tenantId, operation_type: 'generate-report', model: 'gemini-2.5-flash' };
    const metric = (name: string, extra: Record<string, string> = {}) => metricValue(pairs.polling.worker.metricsRegistry, name, { ...labels, ...extra });
    const [promptBefore, outputBefore, costBefore] = [await metric('onceflow_gemini_tokens_total', { kind: 'prompt' }), await metric('onceflow_gemini_tokens_total', { kind: 'output' }), await metric('onceflow_gemini_estimated_cost_micro_usd_total')];
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect(response.json!.result).toMatchObject({ completedBy: 'poll', model: 'gemini-2.5-flash' });
    expect(response.json!.result.text).toContain('[offline model]');
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    expect(await bills(key)).toEqual([{ total_tokens: response.json!.result.usage.totalTokens }]);
    expect(await events(key)).toEqual(['operation.succeeded']);
    expect(await ledger(key)).toEqual([expect.objectContaining({ status: 'completed', submit_attempts: 1, completed_by: 'poll' })]);
    // The completed report's tokens and estimated cost, counted for its tenant (flash list prices: $0.30 / $2.50 per million).
    const { promptTokens, outputTokens } = response.json!.result.usage;
    expect(await metric('onceflow_gemini_tokens_total', { kind: 'prompt' }) - promptBefore).toBe(promptTokens);
    expect(await metric('onceflow_gemini_tokens_total', { kind: 'output' }) - outputBefore).toBe(outputTokens);
    expect(await metric('onceflow_gemini_estimated_cost_micro_usd_total') - costBefore).toBe(Math.round(promptTokens * 0.3 + outputTokens * 2.5));
  });

  /** A whole run's history: the facade answers at the finishing COMMIT, before the run closes. */
  const historyOf = async (workflowId: string) => {
    const handle = temporal.workflow.getHandle(workflowId);
    await handle.result();
    return (await handle.fetchHistory()).events ?? [];
  };

  it('costs 23 history events when a timer poll completes it: the poll that reads the end finishes it, no finishing local activity (24 before)', async () => {
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(200);
    const history = await historyOf(response.json!.workflowId);
    // Two regular activities (the submission, the poll), one timer, one local activity (reportSettings) recorded as a marker.
    expect(history.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name))
      .toEqual(['submitInteraction', 'pollInteraction']);
    expect(history.filter((e) => e.timerStartedEventAttributes)).toHaveLength(1);
    expect(history.filter((e) => e.markerRecordedEventAttributes)).toHaveLength(1);
    expect(history.length).toBe(23);
    expect(await bills(key)).toEqual([{ total_tokens: response.json!.result.usage.totalTokens }]);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('costs 24 history events when the webhook wakes the poll that completes it (25 before)', async () => {
    const { key, created, interaction } = await submitHeldWithWebhook();
    await fake.complete(interaction.id);
    const response = await run('webhooks', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect(response.json!.result.completedBy).toBe('webhook');
    const history = await historyOf(created.json!.workflowId);
    // The signal and the timer it cut short; then the poll, which finishes.
    expect(history.filter((e) => e.workflowExecutionSignaledEventAttributes)).toHaveLength(1);
    expect(history.filter((e) => e.timerCanceledEventAttributes)).toHaveLength(1);
    expect(history.filter((e) => e.markerRecordedEventAttributes)).toHaveLength(1);
    expect(history.length).toBe(24);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('finishes in the workflow when the poll could not: PostgreSQL refuses the bill, one interaction, one bill, one event once it takes it', async () => {
    const marker = `report-bill-refused-${randomUUID()}`;
    const restore = await refuseInserts(pool, { table: 'usage_ledger', marker });
    try {
      const key = randomUUID();
      const body = { prompt: `a report whose bill is refused (${marker})` };
      const created = await run('polling', key, { body });
      expect(created.status).toBe(202);
      const handle = temporal.workflow.getHandle(created.json!.workflowId);
      // The poll read the end and returned it unfinished; the workflow's finishing local activity now retries against the refusal.
      await eventually('the poll that read the end completed', async () =>
        ((await handle.fetchHistory()).events ?? []).filter((e) => e.activityTaskCompletedEventAttributes).length === 2);
      expect(await ledger(key)).toEqual([expect.objectContaining({ status: 'completed', completed_by: 'poll' })]);
      expect((await operationOf(key)).status).toBe('running');
      expect(await bills(key)).toHaveLength(0);
      await restore();
      const final = await run('polling', key, { wait: 60, body });
      expect(final.status).toBe(200);
      expect(final.json!.result).toMatchObject({ completedBy: 'poll', model: 'gemini-2.5-flash' });
      expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
      expect(await bills(key)).toEqual([{ total_tokens: final.json!.result.usage.totalTokens }]);
      expect(await events(key)).toEqual(['operation.succeeded']);
      // reportSettings and the finish, both local activities.
      expect((await historyOf(created.json!.workflowId)).filter((e) => e.markerRecordedEventAttributes)).toHaveLength(2);
    } finally {
      await restore();
    }
  });

  it('submits one interaction for 50 concurrent duplicate requests, bills once and publishes one event', async () => {
    const key = randomUUID();
    const body = { prompt: 'fifty of the same report' };
    const responses = await Promise.all(Array.from({ length: 50 }, () => run('polling', key, { body })));
    expect(responses.filter((r) => r.status >= 500)).toEqual([]);
    const final = await run('polling', key, { wait: 60, body });
    expect(final.status).toBe(200);
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('completes once when the webhook is delivered twice and a poll then sees the completion: one bill, one event', async () => {
    const { key, interaction } = await submitHeldWithWebhook(2);
    await fake.complete(interaction.id);

    const response = await run('webhooks', key, { wait: 60 });
    expect(response.status).toBe(200);
    // The first poll timer is ten minutes away: only the webhook can have woken the workflow.
    expect(response.json!.result.completedBy).toBe('webhook');
    await eventually('both deliveries', async () => (await fake.webhookDeliveries()).length === 2);
    expect((await fake.webhookDeliveries()).map((d) => d.status)).toEqual([200, 200]);
    // A third delivery after the end is acknowledged and changes nothing.
    await fake.deliver(interaction.id, { times: 1 });
    expect((await fake.webhookDeliveries()).map((d) => d.status)).toEqual([200, 200, 200]);

    expect(await inboxRows(interaction.id)).toHaveLength(1);
    expect(await ledger(key)).toEqual([expect.objectContaining({ status: 'completed', submit_attempts: 1, webhooks_received: 1, completed_by: 'webhook' })]);
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('polls again at once when the completion webhook arrives while a poll is reading the interaction as still running', async () => {
    const { key, created, interaction } = await submitHeldWithWebhook();

    // An early webhook (the interaction still runs) wakes the workflow; its poll reads "in_progress", and the answer is held.
    await fake.interactions({ holdReads: true });
    const body = JSON.stringify({ type: 'interaction.completed', timestamp: new Date().toISOString(), data: { id: interaction.id } });
    const early = await fetch(webhookUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signGeminiWebhook(DEV_GEMINI_WEBHOOK_SECRET, { id: `early-${randomUUID()}`, at: new Date(), body }) },
      body,
    });
    expect(early.status).toBe(200);
    await eventually('the poll to read the interaction', async () => (await fake.calls()).some((c) => c.operation === 'interactions.get'));
    // While that poll runs, the interaction ends and its webhook is accepted (the workflow is signalled before the 200).
    await fake.complete(interaction.id);
    await eventually('the completion webhook accepted', async () => (await fake.webhookDeliveries()).some((d) => d.status === 200));
    await fake.interactions({ holdReads: false });
    expect(await fake.release()).toBe(1);

    // The next poll timer is ten minutes away: only the signal that came during the poll can finish the report now.
    const response = await run('webhooks', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect(response.json!.result.completedBy).toBe('webhook');
    const handle = temporal.workflow.getHandle(created.json!.workflowId);
    await handle.result(); // the operation row commits before the run closes
    expect(await handle.query('progress')).toMatchObject({ step: 'done', polls: 2, webhookWakeups: 2 });
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('acknowledges a first-seen webhook that arrives after a timer poll already completed the report: 200, one bill, one event', async () => {
    await fake.interactions({ webhook: { url: `${pairs.polling.api.baseUrl}/v1/webhooks/gemini`, secret: DEV_GEMINI_WEBHOOK_SECRET, deliveries: 0 } });
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect(response.json!.result.completedBy).toBe('poll');
    const handle = temporal.workflow.getHandle(response.json!.workflowId);
    await handle.result();
    const interaction = await heldInteraction();
    // What the route meets when it signals the closed run (and must answer 200 for, not 5xx).
    await expect(handle.signal(interactionEndedSignal, { interactionId: interaction.id, eventType: 'interaction.completed', webhookId: 'probe' })).rejects.toThrow(WorkflowNotFoundError);

    await fake.deliver(interaction.id);
    expect((await fake.webhookDeliveries()).map((d) => d.status)).toEqual([200]);
    expect(await inboxRows(interaction.id)).toHaveLength(1);
    expect(await ledger(key)).toEqual([expect.objectContaining({ status: 'completed', webhooks_received: 1, completed_by: 'poll' })]);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
    const repeat = await run('polling', key);
    expect(repeat.status).toBe(200);
    expect(repeat.json!.result).toEqual(response.json!.result);
  });

  it('answers a webhook with a bad signature 401 and changes nothing; the good one then completes the report', async () => {
    const { key, created, interaction } = await submitHeldWithWebhook(0);
    await fake.complete(interaction.id);

    await fake.deliver(interaction.id, { badSignature: true });
    expect((await fake.webhookDeliveries()).map((d) => d.status)).toEqual([401]);
    // Signed with the right secret but a body changed afterwards: refused too.
    const body = JSON.stringify({ type: 'interaction.completed', timestamp: new Date().toISOString(), data: { id: interaction.id } });
    const headers = signGeminiWebhook(DEV_GEMINI_WEBHOOK_SECRET, { id: `forged-${randomUUID()}`, at: new Date(), body });
    const tampered = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body.replace('completed', 'failed') });
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get('content-type')).toMatch(/application\/problem\+json/);
    const unsigned = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unsigned.status).toBe(401);

    expect(await inboxRows(interaction.id)).toEqual([]);
    expect(await ledger(key)).toEqual([expect.objectContaining({ status: 'submitted', webhooks_received: 0, completed_by: null })]);
    expect((await operationOf(key)).status).toBe('running');
    const handle = temporal.workflow.getHandle(created.json!.workflowId);
    expect(await handle.query('progress')).toMatchObject({ step: 'waiting', webhookWakeups: 0, polls: 0 });

    await fake.deliver(interaction.id);
    const response = await run('webhooks', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect(response.json!.result.completedBy).toBe('webhook');
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('answers a webhook for an interaction it never submitted 404 without recording it, so a redelivery can still count', async () => {
    const body = JSON.stringify({ type: 'interaction.completed', timestamp: new Date().toISOString(), data: { id: `unknown-${randomUUID()}` } });
    const eventId = `evt-${randomUUID()}`;
    const headers = signGeminiWebhook(DEV_GEMINI_WEBHOOK_SECRET, { id: eventId, at: new Date(), body });
    const response = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    expect(response.status).toBe(404);
    expect((await pool.query('SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2', [GEMINI_WEBHOOK_CONSUMER, eventId])).rows).toEqual([]);
  });

  it('retries a rate-limited submission after the server’s delay: two paid calls, one interaction recorded, one bill', async () => {
    await fake.script([{ kind: 'error', status: 429, retryDelaySeconds: 1 }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(200);
    expect((await fake.calls({ paid: true })).map((c) => c.status)).toEqual([429, 200]);
    expect(response.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['rate_limited', 'succeeded']);
    // the 429 started nothing, so the ledger counts one submission that may have been paid
    expect(await ledger(key)).toEqual([expect.objectContaining({ submit_attempts: 1, status: 'completed' })]);
    expect(await bills(key)).toHaveLength(1);
  });

  it('does not retry a rejected submission: one call, 422, no bill, one failure event', async () => {
    await fake.script([{ kind: 'safety' }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(422);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/prompt-rejected' });
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await bills(key)).toHaveLength(0);
    expect(await events(key)).toEqual(['operation.failed']);
  });

  it('still does not retry a rejected submission when PostgreSQL refuses the failed attempt’s row: one call, 422', async () => {
    const marker = `attempt-row-refused-${randomUUID()}`;
    const restore = await refuseInserts(pool, { table: 'gemini_attempts', marker });
    try {
      await fake.script([{ kind: 'safety' }], 'gemini-2.5-flash');
      const key = randomUUID();
      const response = await run('polling', key, { wait: 60, body: { prompt: `a report Gemini refuses (${marker})` } });
      expect(response.status).toBe(422);
      expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/prompt-rejected' });
      expect(await fake.calls({ paid: true })).toHaveLength(1);
      expect(await bills(key)).toHaveLength(0);
      expect(await events(key)).toEqual(['operation.failed']);
    } finally {
      await restore();
    }
  });

  it('fails with 502 and no bill when the interaction itself fails', async () => {
    await fake.script([{ kind: 'ok', finalStatus: 'failed' }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run('polling', key, { wait: 60 });
    expect(response.status).toBe(502);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/provider-failure' });
    expect(await bills(key)).toHaveLength(0);
    expect(await events(key)).toEqual(['operation.failed']);
  });
});
