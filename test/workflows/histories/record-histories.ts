/**
 * Records real event histories of every workflow type into this folder, for
 * the replay test (test/workflows/replay.test.ts): runs that a released worker
 * started must still complete after a newer worker takes over.
 *
 * Not part of `make test`. Run it (against the real dev server and PostgreSQL
 * of global-setup) before a change to a workflow's shape, with the code of the
 * version whose runs must survive, and commit the JSON files it writes:
 *
 *   npx jest --selectProjects integration --testMatch '**' '/histories/record-histories.ts'
 *
 * (one glob, without the quote break). It writes `recorded/<scenario>.json`
 * (each history as history-json.ts writes it); rename `recorded/` to the
 * next version folder (v1/, v2/, …) and commit it. The replay test reads
 * every version folder: each released shape must keep replaying.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../../src/db/pool';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../../dev/gemini-offline/server';
import { DEV_GEMINI_WEBHOOK_SECRET } from '../../../src/integrations/gemini/webhooks';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../../helpers/api';
import { createTestPool } from '../../helpers/db';
import { connectTestClient, startTestWorker, type TestWorker } from '../../helpers/temporal';
import { eventually, FakeGeminiControl } from '../../fakes/gemini';
import { historyToPlainObject } from './history-json';
import { startReportWorker } from '../../fakes/report-worker';

describe('record workflow histories', () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let content: { worker: TestWorker; api: TestApi };
  let reportPoll: { worker: TestWorker; api: TestApi };
  let reportWebhook: { worker: TestWorker; api: TestApi };
  /** Calls held open for a minute and reports on a 10-minute poll timer: a cancel always meets work in flight. */
  let cancels: { worker: TestWorker; api: TestApi };
  let tenant: { tenantId: string; apiKey: string };

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    const contentWorker = await startTestWorker({ pool, geminiBaseUrl: gemini.url, geminiTimeoutMs: 1_500 });
    content = { worker: contentWorker, api: await startTestApi({ pool, temporal, taskQueue: contentWorker.taskQueue }) };
    const pollWorker = await startReportWorker({ pool, geminiBaseUrl: gemini.url, reportPolling: { initialMs: 500, maxMs: 500 } });
    reportPoll = { worker: pollWorker, api: await startTestApi({ pool, temporal, taskQueue: pollWorker.taskQueue }) };
    const webhookWorker = await startReportWorker({ pool, geminiBaseUrl: gemini.url, reportPolling: { initialMs: 600_000, maxMs: 600_000 } });
    reportWebhook = { worker: webhookWorker, api: await startTestApi({ pool, temporal, taskQueue: webhookWorker.taskQueue }) };
    const cancelWorker = await startTestWorker({ pool, geminiBaseUrl: gemini.url, geminiTimeoutMs: 60_000, reportPolling: { initialMs: 600_000, maxMs: 600_000 } });
    cancels = { worker: cancelWorker, api: await startTestApi({ pool, temporal, taskQueue: cancelWorker.taskQueue }) };
    tenant = await createApiTenant(pool);
  });
  beforeEach(() => fake.reset());
  afterAll(async () => {
    await fake.release();
    for (const pair of [content, reportPoll, reportWebhook, cancels]) {
      await pair.api.close();
      await pair.worker.stop();
    }
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
  });

  const save = async (name: string, workflowId: string) => {
    const handle = temporal.workflow.getHandle(workflowId);
    // The facade answers at the finishing COMMIT, before the run closes: record whole runs.
    // A canceled run closes as Canceled: its result() rejects, and that is its whole run too.
    await handle.result().catch((error: unknown) => {
      if (!name.includes('canceled')) throw error;
    });
    const history = await handle.fetchHistory();
    await mkdir(path.join(__dirname, 'recorded'), { recursive: true });
    await writeFile(path.join(__dirname, 'recorded', `${name}.json`), `${JSON.stringify(historyToPlainObject(history), null, 1)}\n`);
  };
  const operate = async (api: TestApi, type: string, body: Record<string, unknown>, wait?: number) => {
    const response = await postOperation(api.baseUrl, {
      apiKey: tenant.apiKey, key: randomUUID(), type, body, headers: wait === undefined ? {} : { prefer: `wait=${wait}` },
    });
    return response;
  };

  it('generate-content: succeeds on the first model', async () => {
    const response = await operate(content.api, 'generate-content', { prompt: 'first model' }, 60);
    expect(response.status).toBe(200);
    await save('generate-content-first-model', response.json!.workflowId);
  });

  it('generate-content: falls back to the second model', async () => {
    await fake.script([{ kind: 'error', status: 404 }], 'gemini-2.5-flash');
    const response = await operate(content.api, 'generate-content', { prompt: 'fallback' }, 60);
    expect(response.status).toBe(200);
    expect(response.json!.result.model).toBe('gemini-2.5-flash-lite');
    await save('generate-content-fallback', response.json!.workflowId);
  });

  it('generate-content: the prompt is rejected', async () => {
    await fake.script([{ kind: 'error', status: 400 }], 'gemini-2.5-flash');
    const response = await operate(content.api, 'generate-content', { prompt: 'rejected' }, 60);
    expect(response.status).toBe(422);
    await save('generate-content-rejected', response.json!.operation.workflowId);
  });

  it('generate-content: every model fails', async () => {
    for (const model of ['gemini-2.5-flash', 'gemini-2.5-flash-lite']) {
      await fake.script(Array.from({ length: 3 }, () => ({ kind: 'error' as const, status: 503 })), model);
    }
    const response = await operate(content.api, 'generate-content', { prompt: 'provider failure' }, 60);
    expect(response.status).toBe(502);
    await save('generate-content-provider-failure', response.json!.operation.workflowId);
  });

  it('generate-report: finished by a poll', async () => {
    const response = await operate(reportPoll.api, 'generate-report', { prompt: 'a polled report' }, 60);
    expect(response.status).toBe(200);
    expect(response.json!.result.completedBy).toBe('poll');
    await save('generate-report-poll', response.json!.workflowId);
  });

  it('generate-report: woken by the webhook', async () => {
    const webhookUrl = `${reportWebhook.api.baseUrl}/v1/webhooks/gemini`;
    await fake.interactions({ hold: true, webhook: { url: webhookUrl, secret: DEV_GEMINI_WEBHOOK_SECRET, deliveries: 1 } });
    const created = await operate(reportWebhook.api, 'generate-report', { prompt: 'a webhook report' });
    expect(created.status).toBe(202);
    const interaction = await eventually('the interaction to be submitted', async () => (await fake.listInteractions())[0]);
    await eventually('the interaction id in the ledger', async () =>
      (await pool.query('SELECT 1 FROM gemini_interactions WHERE interaction_id = $1', [interaction.id])).rowCount === 1);
    await fake.complete(interaction.id);
    const handle = temporal.workflow.getHandle(created.json!.workflowId);
    await handle.result();
    const done = await pool.query(`SELECT result->>'completedBy' AS by FROM operations WHERE workflow_id = $1`, [created.json!.workflowId]);
    expect(done.rows[0].by).toBe('webhook');
    await save('generate-report-webhook', created.json!.workflowId);
  });

  const cancelAndWait = async (type: string, key: string) => {
    const response = await fetch(`${cancels.api.baseUrl}/v1/operations/${type}/${key}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${tenant.apiKey}` } });
    expect(response.status).toBe(202);
    await eventually('the operation to end canceled', async () =>
      (await pool.query(`SELECT 1 FROM operations WHERE tenant_id = $1 AND idempotency_key = $2 AND status = 'canceled'`, [tenant.tenantId, key])).rowCount === 1, 60_000);
  };

  it('generate-content: canceled while its Gemini call is in flight', async () => {
    await fake.script([{ kind: 'ok', hold: true }], '*');
    const key = randomUUID();
    const created = await postOperation(cancels.api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'canceled in flight' } });
    expect(created.status).toBe(202);
    await eventually('the call to be in flight', async () => (await fake.calls({ paid: true })).length === 1);
    await cancelAndWait('generate-content', key);
    await save('generate-content-canceled', created.json!.workflowId);
  });

  it('generate-report: canceled while it waits for its interaction', async () => {
    await fake.interactions({ hold: true });
    const key = randomUUID();
    const created = await postOperation(cancels.api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body: { prompt: 'canceled while waiting' } });
    expect(created.status).toBe(202);
    const interaction = await eventually('the interaction to be submitted', async () => (await fake.listInteractions())[0]);
    await eventually('the interaction id in the ledger', async () =>
      (await pool.query('SELECT 1 FROM gemini_interactions WHERE interaction_id = $1', [interaction.id])).rowCount === 1);
    await cancelAndWait('generate-report', key);
    await save('generate-report-canceled', created.json!.workflowId);
  });

  it('a schedule slot starts its operation', async () => {
    // Started by a real Temporal Schedule, so the history carries the slot's
    // nominal time (TemporalScheduledStartTime) that replay reads back.
    const scheduleId = `record-slot-${randomUUID()}`;
    const schedule = await temporal.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: '1 day' }] },
      action: {
        type: 'startWorkflow', workflowType: 'scheduledSlotWorkflow', workflowId: scheduleId, taskQueue: content.worker.taskQueue,
        args: [{ tenantId: tenant.tenantId, scheduleId, operationType: 'generate-content', input: { prompt: 'a scheduled slot' }, overlap: 'allow_all' }],
      },
      state: { triggerImmediately: true },
    });
    try {
      const workflowId = await eventually('the schedule to start its slot', async () => {
        const action = (await schedule.describe()).info.recentActions[0];
        return action?.action.type === 'startWorkflow' ? action.action.workflow.workflowId : undefined;
      });
      await save('scheduled-slot', workflowId);
    } finally {
      await schedule.delete();
    }
  });

  it('maintenance and prune-outbox passes', async () => {
    for (const [name, workflowType] of [['maintenance', 'maintenanceWorkflow'], ['prune-outbox', 'pruneOutboxWorkflow']] as const) {
      const handle = await temporal.workflow.start(workflowType, {
        workflowId: `record-${name}-${randomUUID()}`, taskQueue: content.worker.taskQueue, args: workflowType === 'pruneOutboxWorkflow' ? [{}] : [],
      });
      await handle.result();
      await save(name, handle.workflowId);
    }
  });
});
