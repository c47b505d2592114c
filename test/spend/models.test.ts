import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { Registry } from 'prom-client';
import { ConfigError, loadConfig } from '../../src/config';
import type { Pool } from '../../src/db/pool';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startProcess } from '../helpers/processes';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

/** Models are the operator's allowlist: requests, prices and metric labels stay inside it. */
describe('the model allowlist', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  const allowed = ['gemini-2.5-flash', 'gemini-2.5-flash-lite'];

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    api = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('models'), config: { GEMINI_ALLOWED_MODELS: allowed } });
    tenant = await createApiTenant(pool, 'models');
  });
  afterAll(async () => {
    await api.close();
    await temporal.connection.close();
    await pool.end();
  });

  const operationRows = async (key: string) =>
    (await pool.query('SELECT 1 FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows;

  it.each(['generate-content', 'generate-report'])('%s: a model off the list is 400 invalid-request naming the allowed models, and nothing is reserved', async (type) => {
    const key = randomUUID();
    // A real model name, well formed, priced even: only the operator's list keeps it out.
    const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body: { prompt: 'hello', model: 'gemini-2.5-pro' } });
    expect(response.status).toBe(400);
    expect(response.json!.type).toBe('https://onceflow.dev/problems/invalid-request');
    const modelIssue = (response.json!.issues as { path: string; message: string }[]).find((issue) => JSON.stringify(issue).includes('model'));
    expect(modelIssue?.message).toBe('model must be one of the allowed models: gemini-2.5-flash, gemini-2.5-flash-lite');
    expect(await operationRows(key)).toEqual([]);
  });

  it('an allowed model is accepted', async () => {
    const key = randomUUID();
    const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'hello', model: 'gemini-2.5-flash-lite' } });
    expect(response.status).toBe(202);
    expect(await operationRows(key)).toHaveLength(1);
  });

  it('the OpenAPI document lists the allowed models', async () => {
    const document = await (await fetch(`${api.baseUrl}/openapi.json`)).json() as unknown;
    const text = JSON.stringify(document);
    expect(text).toContain('"enum":["gemini-2.5-flash","gemini-2.5-flash-lite"]');
  });

  it('refuses a fallback chain that names a model off the list', () => {
    expect(() => loadConfig({ GEMINI_ALLOWED_MODELS: 'gemini-2.5-flash', GEMINI_MODELS: 'gemini-2.5-flash,gemini-2.5-pro' })).toThrow(ConfigError);
    expect(() => loadConfig({ GEMINI_ALLOWED_MODELS: 'gemini-2.5-flash', GEMINI_MODELS: 'gemini-2.5-flash,gemini-2.5-pro' })).toThrow(/GEMINI_MODELS: gemini-2.5-pro not in GEMINI_ALLOWED_MODELS/);
  });

  it('the worker refuses to start when an allowed model has no price, naming it', async () => {
    const worker = startProcess('worker', {
      DATABASE_URL: testInfra().databaseUrl,
      GEMINI_BASE_URL: 'http://127.0.0.1:9',
      GEMINI_ALLOWED_MODELS: 'gemini-2.5-flash,gemini-2.5-flash-lite,gemini-9-ultra',
    });
    expect(await worker.exited).toBe(2);
    expect(worker.output()).toMatch(/invalid configuration: GEMINI_ALLOWED_MODELS: no price for gemini-9-ultra in src\/operations\/pricing.ts/);
    expect(worker.output()).not.toMatch(/worker polling/);
  });

  it('metric labels carry only allowed models: anything else reads "other"', async () => {
    const registry = new Registry();
    const metrics = createGeminiMetrics(registry, { allowedModels: allowed });
    metrics.calls.inc({ model: 'gemini-2.5-flash', outcome: 'succeeded', tenant: 't', operation_type: 'generate-content' });
    metrics.calls.inc({ model: 'x'.repeat(100), outcome: 'succeeded', tenant: 't', operation_type: 'generate-content' });
    metrics.fallbacks.inc({ from_model: 'gemini-2.5-flash', to_model: 'gemini-1.0-pro', operation_type: 'generate-content' });
    const text = await registry.metrics();
    expect(text).toContain('onceflow_gemini_calls_total{model="gemini-2.5-flash",outcome="succeeded",tenant="t",operation_type="generate-content"} 1');
    expect(text).toContain('onceflow_gemini_calls_total{model="other",outcome="succeeded",tenant="t",operation_type="generate-content"} 1');
    expect(text).toContain('onceflow_gemini_fallbacks_total{from_model="gemini-2.5-flash",to_model="other",operation_type="generate-content"} 1');
    expect(text).not.toContain('xxxx');
    expect(text).not.toContain('gemini-1.0-pro');
  });
});
