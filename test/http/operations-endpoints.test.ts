import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../src/dev/ports';
import { searchAttributes } from '../../workflows/definitions';
import { createTenant, hashApiKey, provisionTenants, rotateApiKey } from '../../src/tenants/api-keys';
import { postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

describe('operations endpoints and tenants', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    api = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('idle') });
  });
  afterAll(async () => {
    await api.close();
    await temporal.connection.close();
    await pool.end();
  });

  it('answers /healthz, and /readyz only when PostgreSQL and Temporal both answer', async () => {
    expect(await (await fetch(`${api.baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${api.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', temporal: 'ok' });

    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await findFreePort()}` }), namespace: testInfra().temporalNamespace });
    const degraded = await startTestApi({ pool, temporal: deadTemporal, taskQueue: uniqueTaskQueue() });
    try {
      const notReady = await fetch(`${degraded.baseUrl}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.json()).toMatchObject({ status: 'unavailable', postgres: 'ok' });
      expect((await fetch(`${degraded.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await degraded.close();
    }
  });

  it('serves Prometheus metrics of the idempotency outcomes from the injected registry', async () => {
    const tenant = await createTenant(pool, `metrics-${randomUUID().slice(0, 8)}`);
    const key = randomUUID();
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key });
    const response = await fetch(`${api.baseUrl}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toContain(`onceflow_idempotency_requests_total{tenant="${tenant.tenantId}",operation_type="generate-content",outcome="new"} 1`);
    expect(text).toContain(`onceflow_idempotency_requests_total{tenant="${tenant.tenantId}",operation_type="generate-content",outcome="in_progress"} 1`);
  });

  it('publishes an OpenAPI 3.1 document with every operation type and a docs page', async () => {
    const document = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as any;
    expect(document.openapi).toBe('3.1.0');
    for (const type of ['generate-content', 'generate-report']) {
      const post = document.paths[`/v1/operations/${type}`].post;
      expect(post.requestBody.content['application/json'].schema.properties.prompt).toBeDefined();
      expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(['200', '202', '400', '409', '422', '503']));
    }
    expect(document.paths['/v1/operations/{type}/{key}'].get).toBeDefined();
    // Problems are documented under the media type they are sent with, on every /v1 route
    // (/readyz answers its 503 with the readiness body, not a problem).
    const problemMediaTypes = new Set<string>();
    for (const [path, item] of Object.entries<any>(document.paths)) {
      if (!path.startsWith('/v1/')) continue;
      for (const [method, operation] of Object.entries<any>(item)) {
        for (const [status, response] of Object.entries<any>(operation.responses ?? {})) {
          if (Number(status) >= 400) problemMediaTypes.add(`${Object.keys(response.content ?? {}).join(',')}`);
          if (Number(status) >= 400) expect({ path, method, status, schema: response.content?.['application/problem+json']?.schema?.required }).toEqual({ path, method, status, schema: expect.arrayContaining(['type', 'title', 'status', 'detail']) });
        }
      }
    }
    expect([...problemMediaTypes]).toEqual(['application/problem+json']);
    expect(Object.keys(document.paths['/v1/webhooks/gemini'].post.responses)).toEqual(expect.arrayContaining(['200', '401', '404']));
    const docs = await fetch(`${api.baseUrl}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
  });

  it('makes every run findable in Temporal by tenant, type and key, with a readable summary and a UI link', async () => {
    const tenant = await createTenant(pool, `ui-${randomUUID().slice(0, 8)}`);
    const key = `order 42 / retry #1 ${randomUUID()}`;
    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'secret prompt text', model: 'gemini-2.5-flash' } });
    expect(created.status).toBe(202);
    const handle = temporal.workflow.getHandle(created.json!.workflowId, created.json!.runId);
    const description = await handle.describe();
    expect(description.typedSearchAttributes.get(searchAttributes.tenant)).toBe(tenant.tenantId);
    expect(description.typedSearchAttributes.get(searchAttributes.operationType)).toBe('generate-content');
    expect(description.typedSearchAttributes.get(searchAttributes.idempotencyKey)).toBe(key);
    const summary = await description.staticSummary();
    expect(summary).toContain(key);
    expect(summary).toContain('gemini-2.5-flash');
    expect(summary).not.toContain('secret prompt text');
    expect(created.json!.links.temporalUi).toBe(
      `${testInfra().temporalUiUrl}/namespaces/${testInfra().temporalNamespace}/workflows/${encodeURIComponent(created.json!.workflowId)}/${created.json!.runId}/history`,
    );
  });

  it('stores API keys only as SHA-256 digests, and rotating a key revokes the old one', async () => {
    const tenantId = `rotate-${randomUUID().slice(0, 8)}`;
    const { apiKey: firstKey } = await createTenant(pool, tenantId);
    const stored = await pool.query('SELECT key_hash FROM api_keys WHERE tenant_id = $1', [tenantId]);
    expect(stored.rows).toEqual([{ key_hash: hashApiKey(firstKey) }]);
    expect(stored.rows[0].key_hash.toString('utf8')).not.toContain(firstKey);

    expect((await postOperation(api.baseUrl, { apiKey: firstKey, key: randomUUID() })).status).toBe(202);
    const rotated = await rotateApiKey(pool, tenantId);
    // The auth cache trusts a key for at most 30 s; a fresh facade sees the rotation at once.
    const fresh = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue() });
    try {
      expect((await postOperation(fresh.baseUrl, { apiKey: firstKey, key: randomUUID() })).status).toBe(401);
      expect((await postOperation(fresh.baseUrl, { apiKey: rotated!.apiKey, key: randomUUID() })).status).toBe(202);
    } finally {
      await fresh.close();
    }
    expect(await rotateApiKey(pool, `unknown-${randomUUID().slice(0, 8)}`)).toBeUndefined();
  });

  it('provisions ONCEFLOW_TENANTS idempotently and refuses a key already bound to another tenant', async () => {
    const suffix = randomUUID().slice(0, 8);
    const pairs = [{ tenantId: `env-a-${suffix}`, apiKey: `env-key-a-${suffix}` }, { tenantId: `env-b-${suffix}`, apiKey: `env-key-b-${suffix}` }];
    await provisionTenants(pool, pairs);
    await provisionTenants(pool, pairs);
    const { rows } = await pool.query('SELECT tenant_id, count(*)::int AS keys FROM api_keys WHERE tenant_id = ANY($1) GROUP BY tenant_id ORDER BY tenant_id', [pairs.map((p) => p.tenantId)]);
    expect(rows).toEqual([{ tenant_id: pairs[0]!.tenantId, keys: 1 }, { tenant_id: pairs[1]!.tenantId, keys: 1 }]);
    await expect(provisionTenants(pool, [{ tenantId: pairs[1]!.tenantId, apiKey: pairs[0]!.apiKey }])).rejects.toThrow(/already belongs to another tenant/);
    expect((await postOperation(api.baseUrl, { apiKey: pairs[1]!.apiKey, key: randomUUID() })).status).toBe(202);
  });
});
