import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, type TestApi } from '../helpers/api';
import { billsOf, eventTypesOf } from '../helpers/db';
import { type TestWorker } from '../helpers/temporal';
import { refuseInserts } from '../fakes/db-faults';
import { eventually, type FakeGeminiControl } from '../fakes/gemini';
import { metricValue } from '../fakes/metrics';
import { startTestStack } from '../helpers/stack';

/**
 * generate-content end to end: real facade, real Temporal worker, real
 * @google/genai client talking HTTP to the offline model server, whose call
 * counter says how many times Gemini was paid.
 */
describe('generate-content never pays Gemini twice', () => {
  let pool: Pool;
  let temporal: Client;
  let fake: FakeGeminiControl;
  let worker: TestWorker;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, geminiControl: fake, worker, api, tenant, close } = await startTestStack({
      gemini: {},
      tenant: 'tenant',
      worker: { geminiTimeoutMs: 1_500 },
      api: {},
    }));
  });
  beforeEach(() => fake.reset());
  afterAll(() => close());

  const bills = (key: string) => billsOf(pool, tenant.tenantId, key);
  const events = (key: string) => eventTypesOf(pool, tenant.tenantId, key);
  const run = (key: string, body: Record<string, unknown> = { prompt: `prompt for ${key}` }) =>
    postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body, headers: { prefer: 'wait=60' } });
  /** A counter of the test worker's own registry (tests in a file run one after another, so before/after deltas are this test's). */
  const metric = (name: string, labels: Record<string, string> = {}) => metricValue(worker.metricsRegistry, name, labels);

  it('calls Gemini once, bills once and publishes one event for 50 concurrent duplicate requests', async () => {
    const key = randomUUID();
    const body = { prompt: 'fifty of the same' };
    const responses = await Promise.all(Array.from({ length: 50 }, () => postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body })));
    expect(responses.filter((r) => r.status >= 500)).toEqual([]);
    const final = await run(key, body);
    expect(final.status).toBe(200);
    expect(await fake.calls()).toHaveLength(1);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
    expect(final.json!.result.text).toContain('[offline model]');
    expect(final.json!.result.usage.totalTokens).toBe((await bills(key))[0]!.total_tokens);
  });

  it('counts the paid call, its tokens and its estimated cost for its tenant and operation type', async () => {
    const own = await createApiTenant(pool);
    const labels = { tenant: own.tenantId, operation_type: 'generate-content' };
    const response = await postOperation(api.baseUrl, { apiKey: own.apiKey, key: randomUUID(), body: { prompt: 'what does this cost?' }, headers: { prefer: 'wait=60' } });
    expect(response.status).toBe(200);
    const { promptTokens, outputTokens } = response.json!.result.usage;
    expect(await metric('onceflow_gemini_calls_total', { ...labels, model: 'gemini-2.5-flash', outcome: 'succeeded' })).toBe(1);
    expect(await metric('onceflow_gemini_tokens_total', { ...labels, kind: 'prompt' })).toBe(promptTokens);
    expect(await metric('onceflow_gemini_tokens_total', { ...labels, kind: 'output' })).toBe(outputTokens);
    // gemini-2.5-flash list prices: $0.30 per million prompt tokens, $2.50 per million output tokens.
    expect(await metric('onceflow_gemini_estimated_cost_micro_usd_total', labels)).toBe(Math.round(promptTokens * 0.3 + outputTokens * 2.5));
  });

  it('retries 429 with the server’s delay: three calls, one bill, three attempts in the result', async () => {
    const retriesBefore = await metric('onceflow_gemini_retries_total', { model: 'gemini-2.5-flash', operation_type: 'generate-content' });
    const rateLimitedBefore = await metric('onceflow_gemini_calls_total', { tenant: tenant.tenantId, outcome: 'rate_limited' });
    await fake.script([{ kind: 'error', status: 429, retryDelaySeconds: 3 }, { kind: 'error', status: 429, retryDelaySeconds: 3 }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(200);
    const calls = await fake.calls();
    expect(calls.map((c) => c.status)).toEqual([429, 429, 200]);
    // Honoured the 3 s RetryInfo delay before each retry. Our own backoff
    // would have waited at most 1 s, then 2 s (geminiBackoff), so it cannot pass this.
    expect(calls[1]!.atMs - calls[0]!.atMs).toBeGreaterThanOrEqual(2_950);
    expect(calls[2]!.atMs - calls[1]!.atMs).toBeGreaterThanOrEqual(2_950);
    expect(await bills(key)).toHaveLength(1);
    expect(response.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['rate_limited', 'rate_limited', 'succeeded']);
    expect(response.json!.result.attempts.every((a: { model: string }) => a.model === 'gemini-2.5-flash')).toBe(true);
    // Two calls repeated an earlier call of the same step.
    expect(await metric('onceflow_gemini_retries_total', { model: 'gemini-2.5-flash', operation_type: 'generate-content' }) - retriesBefore).toBe(2);
    expect(await metric('onceflow_gemini_calls_total', { tenant: tenant.tenantId, outcome: 'rate_limited' }) - rateLimitedBefore).toBe(2);
  });

  it.each([
    ['a 400', { kind: 'error' as const, status: 400 }, 'prompt-rejected'],
    ['a safety block', { kind: 'safety' as const }, 'prompt-blocked'],
  ])('does not retry %s, nor try another model: one call, 422, replayed to repeats without another call', async (_name, behaviour, problem) => {
    await fake.script([behaviour], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(422);
    expect(response.json).toMatchObject({ type: `https://onceflow.dev/problems/${problem}`, operation: { status: 'failed' } });
    const repeat = await run(key);
    expect(repeat.status).toBe(422);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(await fake.calls()).toHaveLength(1);
    expect(await bills(key)).toHaveLength(0);
    expect(await events(key)).toEqual(['operation.failed']);
  });

  it.each([
    ['a 400', { kind: 'error' as const, status: 400 }, 'prompt-rejected'],
    ['a safety block', { kind: 'safety' as const }, 'prompt-blocked'],
  ])('still does not retry %s when PostgreSQL refuses the failed attempt’s row: one call, 422', async (_name, behaviour, problem) => {
    const marker = `attempt-row-refused-${randomUUID()}`;
    const restore = await refuseInserts(pool, { table: 'gemini_attempts', marker });
    try {
      await fake.script([behaviour], 'gemini-2.5-flash');
      const key = randomUUID();
      const response = await run(key, { prompt: `a prompt Gemini refuses (${marker})` });
      expect(response.status).toBe(422);
      expect(response.json).toMatchObject({ type: `https://onceflow.dev/problems/${problem}` });
      expect(await fake.calls()).toHaveLength(1);
      expect(await bills(key)).toHaveLength(0);
      expect(await events(key)).toEqual(['operation.failed']);
    } finally {
      await restore();
    }
  });

  it('finishes in the workflow when the paid-call activity could not: PostgreSQL refuses the bill, one call, one bill, one event once it takes it', async () => {
    const marker = `bill-refused-${randomUUID()}`;
    const restore = await refuseInserts(pool, { table: 'usage_ledger', marker });
    try {
      const key = randomUUID();
      const accepted = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: `a prompt whose bill is refused (${marker})` } });
      expect(accepted.status).toBe(202);
      const handle = temporal.workflow.getHandle(accepted.json!.workflowId);
      // The activity returned its paid answer unfinished; the workflow's finishing local activity now retries against the refusal.
      await eventually('the paid-call activity completed', async () =>
        ((await handle.fetchHistory()).events ?? []).some((e) => e.activityTaskCompletedEventAttributes));
      expect(await bills(key)).toHaveLength(0);
      await restore();
      const final = await run(key, { prompt: `a prompt whose bill is refused (${marker})` });
      expect(final.status).toBe(200);
      expect(await fake.calls({ paid: true })).toHaveLength(1);
      expect(await bills(key)).toHaveLength(1);
      expect(await events(key)).toEqual(['operation.succeeded']);
      await handle.result();
      expect(((await handle.fetchHistory()).events ?? []).filter((e) => e.markerRecordedEventAttributes)).toHaveLength(1);
    } finally {
      await restore();
    }
  });

  it('falls back to the next model when the primary exhausts its retries, recording both', async () => {
    const fallbacks = () => metric('onceflow_gemini_fallbacks_total', { from_model: 'gemini-2.5-flash', to_model: 'gemini-2.5-flash-lite', operation_type: 'generate-content' });
    const fallbacksBefore = await fallbacks();
    await fake.script(Array.from({ length: 3 }, () => ({ kind: 'error' as const, status: 503 })), 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(200);
    expect(response.json!.result.model).toBe('gemini-2.5-flash-lite');
    const calls = await fake.calls();
    expect(calls.map((c) => `${c.model}:${c.status}`)).toEqual([
      'gemini-2.5-flash:503', 'gemini-2.5-flash:503', 'gemini-2.5-flash:503', 'gemini-2.5-flash-lite:200',
    ]);
    expect(response.json!.result.attempts.map((a: { model: string; outcome: string }) => `${a.model}:${a.outcome}`)).toEqual([
      'gemini-2.5-flash:unavailable', 'gemini-2.5-flash:unavailable', 'gemini-2.5-flash:unavailable', 'gemini-2.5-flash-lite:succeeded',
    ]);
    expect(await bills(key)).toHaveLength(1);
    expect(await fallbacks() - fallbacksBefore).toBe(1);
  });

  it('moves on to the next model when the primary is unknown to Gemini (404), without retrying it, recording both', async () => {
    await fake.script([{ kind: 'error', status: 404, message: 'models/gemini-2.5-flash is not found for API version v1beta' }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(200);
    expect(response.json!.result.model).toBe('gemini-2.5-flash-lite');
    expect((await fake.calls()).map((c) => `${c.model}:${c.status}`)).toEqual(['gemini-2.5-flash:404', 'gemini-2.5-flash-lite:200']);
    const attempts = response.json!.result.attempts;
    expect(attempts.map((a: { model: string; outcome: string }) => `${a.model}:${a.outcome}`)).toEqual(['gemini-2.5-flash:model_not_found', 'gemini-2.5-flash-lite:succeeded']);
    expect(attempts[0].error).toMatch(/^404 NOT_FOUND: models\/gemini-2.5-flash is not found/);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });

  it('fails with 502 provider-failure when every model is down, and the failure releases the key', async () => {
    await fake.script(Array.from({ length: 6 }, () => ({ kind: 'error' as const, status: 500 })));
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(502);
    expect(response.json).toMatchObject({ type: 'https://onceflow.dev/problems/provider-failure' });
    expect(response.json!.operation.error.attempts).toHaveLength(6);
    expect(await fake.calls()).toHaveLength(6);
    // retryable after exhaustion: the same key starts a new run, which now succeeds
    const again = await run(key);
    expect(again.status).toBe(200);
    expect(await bills(key)).toHaveLength(1);
  });

  it('retries a call that hangs past its timeout', async () => {
    await fake.script([{ kind: 'hang' }], 'gemini-2.5-flash');
    const response = await run(randomUUID());
    expect(response.status).toBe(200);
    expect((await fake.calls()).map((c) => c.outcome)).toEqual(['hang', 'ok']);
  });

  it('retries a call whose answer was lost after Gemini did the work (the one window the API cannot close)', async () => {
    await fake.script([{ kind: 'drop' }], 'gemini-2.5-flash');
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(200);
    // Gemini did the work twice: nothing we can send lets it recognise the repeat.
    expect((await fake.calls()).map((c) => c.outcome)).toEqual(['drop', 'ok']);
    expect(await bills(key)).toHaveLength(1);
    expect(response.json!.result.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(['unavailable', 'succeeded']);
  });

  it('answers the progress query with the current step and the models tried', async () => {
    const key = randomUUID();
    const response = await run(key);
    const handle = temporal.workflow.getHandle(response.json!.workflowId);
    // The answer leaves at the finishing COMMIT inside the paid-call activity, before the workflow task that reads its result.
    const summary = await handle.result();
    expect(await handle.query('progress')).toMatchObject({
      step: 'done',
      model: 'gemini-2.5-flash',
      modelsTried: ['gemini-2.5-flash'],
      attempts: [{ model: 'gemini-2.5-flash', outcome: 'succeeded' }],
    });
    // the run's result in the Temporal UI: the outcome, not the text
    expect(summary).toMatchObject({ status: 'succeeded', model: 'gemini-2.5-flash', attempts: 1 });
  });

  it('costs at most 12 history events on its first model: one regular activity that makes the paid call and finishes', async () => {
    const key = randomUUID();
    const response = await run(key);
    expect(response.status).toBe(200);
    const handle = temporal.workflow.getHandle(response.json!.workflowId);
    // The answer comes at the finishing COMMIT, before the workflow task that records it completes.
    await handle.result();
    const { events: history } = await handle.fetchHistory();
    expect(history!.length).toBeLessThanOrEqual(12);
    const scheduled = history!.filter((e) => e.activityTaskScheduledEventAttributes);
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name)).toEqual(['generateWithGemini']);
    // The Temporal UI still names the model of the attempt.
    const summary = scheduled[0]!.userMetadata?.summary;
    expect(summary && Buffer.from(summary.data!).toString('utf8')).toContain('Gemini gemini-2.5-flash (model 1 of 2)');
    // Finished by that activity: no finishing local activity (its marker) after it.
    expect(history!.filter((e) => e.markerRecordedEventAttributes)).toHaveLength(0);
    expect(history!.length).toBe(11);
    expect(await bills(key)).toHaveLength(1);
    expect(await events(key)).toEqual(['operation.succeeded']);
  });
});
