import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';

/** Route plugins of other capabilities are mounted inside the authenticated, tenant-scoped /v1 part of the facade. */
describe('route plugins in the tenant scope', () => {
  let pool: Pool;
  let api: TestApi;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, api, close } = await startTestStack({ api: {} }));
  });
  afterAll(() => close());

  it('answers /v1/subscriptions only with an API key, and shows each tenant only its own subscriptions', async () => {
    const a = await createApiTenant(pool, 'sub-a');
    const b = await createApiTenant(pool, 'sub-b');
    const call = (apiKey: string | undefined, method: string, body?: unknown) =>
      fetch(`${api.baseUrl}/v1/subscriptions`, {
        method,
        headers: { ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const anonymous = await call(undefined, 'GET');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    const url = `http://127.0.0.1:9/${randomUUID()}`;
    expect((await call(a.apiKey, 'POST', { url })).status).toBe(201);
    const listed = async (apiKey: string) => ((await (await call(apiKey, 'GET')).json()) as { data: { url: string }[] }).data.map((s) => s.url);
    expect(await listed(a.apiKey)).toContain(url);
    expect(await listed(b.apiKey)).not.toContain(url);
  });
});
