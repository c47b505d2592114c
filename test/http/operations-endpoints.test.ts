import { createHash, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { searchAttributes } from '../../workflows/definitions';
import { createTenant, provisionTenants, rotateApiKey } from '../../src/tenants/api-keys';
import { postOperation, startTestApi, type TestApi } from '../helpers/api';
import { testInfra } from '../helpers/infra';
import { uniqueTaskQueue } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';

describe('operations endpoints and tenants', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, api, close } = await startTestStack({ api: {} }));
  });
  afterAll(() => close());

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

  it('counts every answer to POST /v1/operations by outcome, and only repeats that started no work as duplicates absorbed', async () => {
    const tenant = await createTenant(pool, `outcomes-${randomUUID().slice(0, 8)}`);
    const taskQueue = uniqueTaskQueue('outcomes');
    // The stale-reservation check needs the facade's clock ahead of the row's time; 10 s does it without waiting.
    const counted = await startTestApi({ pool, temporal, taskQueue, clock: () => Date.now() + 10_000, config: { ONCEFLOW_RATE_LIMIT_PER_MINUTE: 10, ONCEFLOW_BODY_LIMIT_BYTES: 2_000 } });
    const deadTemporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await findFreePort()}` }), namespace: testInfra().temporalNamespace });
    const outage = await startTestApi({ pool, temporal: deadTemporal, taskQueue });
    try {
      const send = (base: string, options: Parameters<typeof postOperation>[1]) => postOperation(base, { apiKey: tenant.apiKey, ...options });
      const key = randomUUID();
      const statuses = [
        (await send(counted.baseUrl, { key })).status, // new
        (await send(counted.baseUrl, { key })).status, // in progress
      ];
      const result = { text: 'done', model: 'gemini-2.5-flash', usage: { promptTokens: 1, outputTokens: 1, totalTokens: 2 }, attempts: [] };
      await pool.query(`UPDATE operations SET status = 'succeeded', result = $3, completed_at = now() WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key, result]);
      statuses.push(
        (await send(counted.baseUrl, { key })).status, // replayed
        (await send(counted.baseUrl, { key, body: { prompt: 'another prompt' } })).status, // fingerprint conflict
        (await send(counted.baseUrl, { key: null })).status, // key missing
        (await send(counted.baseUrl, { key: 'k'.repeat(300) })).status, // key invalid
        (await send(counted.baseUrl, { key: randomUUID(), body: { prompt: '' } })).status, // schema: invalid request
        (await send(counted.baseUrl, { key: randomUUID(), rawBody: '{"prompt":"x"}', contentType: 'text/plain' })).status, // 415: invalid request
        (await send(counted.baseUrl, { key: randomUUID(), body: { prompt: 'x'.repeat(3_000) } })).status, // 413: invalid request
      );
      // Temporal unreachable: 503, and the key stays reserved ...
      const healed = randomUUID();
      statuses.push((await send(outage.baseUrl, { key: healed })).status);
      // ... until a repeat through a facade that can reach Temporal starts it (self-healing: work started, not absorbed).
      statuses.push((await send(counted.baseUrl, { key: healed })).status);
      // Ten requests reached this facade so far: its limit (10 a minute) is spent, the rest are 429.
      statuses.push((await send(counted.baseUrl, { key })).status, (await send(counted.baseUrl, { key })).status);
      expect(statuses).toEqual([202, 409, 200, 422, 400, 400, 400, 415, 413, 503, 409, 429, 429]);

      const counts = async (registry: typeof counted.metricsRegistry, name: string) => {
        const metric = await registry.getSingleMetric(name)!.get();
        return Object.fromEntries(metric.values.filter((v) => v.labels.tenant === tenant.tenantId).map((v) => [String(v.labels.outcome ?? 'all'), v.value]));
      };
      expect(await counts(counted.metricsRegistry, 'onceflow_idempotency_requests_total')).toEqual({
        new: 1, in_progress: 2, replayed: 1, fingerprint_conflict: 1, key_missing: 1, key_invalid: 1, invalid_request: 3, rate_limited: 2,
      });
      expect(await counts(outage.metricsRegistry, 'onceflow_idempotency_requests_total')).toEqual({ unavailable: 1 });
      // The 409 and the replay absorbed a repeat; the self-healing repeat started the workflow, so it is not one.
      expect(await counts(counted.metricsRegistry, 'onceflow_duplicates_absorbed_total')).toEqual({ all: 2 });
    } finally {
      await counted.close();
      await outage.close();
    }
  });

  it('names the operation type and the key in problems answered before the handler runs (schema 400, 413, 415)', async () => {
    const tenant = await createTenant(pool, `context-${randomUUID().slice(0, 8)}`);
    const small = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('context'), config: { ONCEFLOW_BODY_LIMIT_BYTES: 2_000 } });
    try {
      const key = randomUUID();
      const answers = [
        await postOperation(small.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 42 } }),
        await postOperation(small.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'x'.repeat(3_000) } }),
        await postOperation(small.baseUrl, { apiKey: tenant.apiKey, key, rawBody: 'prompt', contentType: 'text/plain' }),
      ];
      expect(answers.map((a) => [a.status, a.json?.operationType, a.json?.idempotencyKey])).toEqual([
        [400, 'generate-content', key],
        [413, 'generate-content', key],
        [415, 'generate-content', key],
      ]);
      // An invalid key is never echoed back as if it were one.
      const invalidKey = await postOperation(small.baseUrl, { apiKey: tenant.apiKey, key: 'k'.repeat(300), body: { prompt: 42 } });
      expect(invalidKey.status).toBe(400);
      expect(invalidKey.json).toMatchObject({ operationType: 'generate-content' });
      expect(invalidKey.json).not.toHaveProperty('idempotencyKey');
    } finally {
      await small.close();
    }
  });

  it('publishes an OpenAPI 3.1 document with every operation type and a docs page', async () => {
    const document = (await (await fetch(`${api.baseUrl}/openapi.json`)).json()) as any;
    expect(document.openapi).toBe('3.1.0');
    for (const type of ['generate-content', 'generate-report']) {
      const post = document.paths[`/v1/operations/${type}`].post;
      expect(post.requestBody.content['application/json'].schema.properties.prompt).toBeDefined();
      expect(Object.keys(post.responses)).toEqual(expect.arrayContaining(['200', '202', '400', '409', '422', '503']));
      // Documented as the contract states it, though the handler (not the schema) enforces it.
      const keyHeader = post.parameters.find((p: any) => p.in === 'header' && p.name === 'idempotency-key');
      expect(keyHeader).toMatchObject({ required: true, schema: { type: 'string', minLength: 1, maxLength: 255 } });
      expect(new RegExp(keyHeader.schema.pattern).test('a'.repeat(255))).toBe(true);
      expect(new RegExp(keyHeader.schema.pattern).test('a\u00e9')).toBe(false);
    }
    // The result is documented from each type's resultSchema, for POST and GET alike.
    for (const [type, extra] of [['generate-content', []], ['generate-report', ['interactionId', 'completedBy']]] as const) {
      for (const response of [document.paths[`/v1/operations/${type}`].post.responses['200'], document.paths[`/v1/operations/${type}/{key}`].get.responses['200']]) {
        const resource = response.content['application/json'].schema;
        expect(resource.properties.operationType).toMatchObject({ enum: [type] });
        const result = resource.properties.result.anyOf.find((s: any) => s.type === 'object');
        expect(result.required).toEqual(expect.arrayContaining(['text', 'model', 'usage', 'attempts', ...extra]));
      }
    }
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
    // SHA-256 of the key, computed here rather than with the code's own helper.
    expect(stored.rows).toEqual([{ key_hash: createHash('sha256').update(firstKey).digest() }]);
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
