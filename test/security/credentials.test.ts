import { randomBytes, randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { ConfigError, loadConfig } from '../../src/config';
import type { Pool } from '../../src/db/pool';
import { generateApiKey } from '../../src/tenants/api-keys';
import { createApiTenant, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startProcess } from '../helpers/processes';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

describe('guessing API keys', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;
  /** Statements the API sends to the api_keys table, counted on the real pool the API uses. */
  let keyLookups = 0;
  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    const counting = new Proxy(pool, {
      get(target, property, receiver) {
        if (property === 'query') {
          return (...args: Parameters<Pool['query']>) => {
            const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string }).text ?? '';
            if (/\bapi_keys\b/.test(text)) keyLookups += 1;
            return (target.query as (...a: unknown[]) => unknown)(...args);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    api = await startTestApi({ pool: counting, temporal, taskQueue: uniqueTaskQueue('auth'), config: { ONCEFLOW_AUTH_FAILURES_PER_MINUTE: 5 } });
  });
  afterAll(async () => {
    await api.close();
    await temporal.connection.close();
    await pool.end();
  });

  const read = (apiKey: string) =>
    fetch(`${api.baseUrl}/v1/operations/generate-content/${randomUUID()}`, { headers: { authorization: `Bearer ${apiKey}` } });

  it('answers 429 to an address after its failed attempts, without a database lookup per guess, and a known key keeps working', async () => {
    const tenant = await createApiTenant(pool);
    // A key that worked before the flood is cached: its tenant keeps working.
    expect((await read(tenant.apiKey)).status).toBe(404);
    const lookupsBefore = keyLookups;
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) {
      const response = await read(`guess-${randomBytes(16).toString('hex')}`);
      statuses.push(response.status);
      if (response.status === 429) expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      await response.arrayBuffer();
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(new Set(statuses.slice(5))).toEqual(new Set([429]));
    // 200 guesses cost 5 lookups: the rest were refused before any query.
    expect(keyLookups - lookupsBefore).toBe(5);
    // Requests without any key count too, and cost nothing.
    expect((await fetch(`${api.baseUrl}/v1/operations/generate-content/x`)).status).toBe(429);
    expect((await read(tenant.apiKey)).status).toBe(404);
  });
});

describe('keys strong enough that guessing is hopeless', () => {
  it('generates CLI keys with at least 128 bits of randomness', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateApiKey()));
    expect(keys.size).toBe(1000);
    for (const key of keys) expect(Buffer.from(key.replace(/^of_/, ''), 'base64url').length).toBeGreaterThanOrEqual(16);
  });

  it('refuses short or patterned ONCEFLOW_TENANTS keys in production, naming the tenant', () => {
    for (const weak of ['demo-key-change-me', 'a'.repeat(64), 'abababababababababababababababababababab', 'key-12345678']) {
      expect(() => loadConfig({ NODE_ENV: 'production', ONCEFLOW_TENANTS: `acme:${weak}` })).toThrow(ConfigError);
      expect(() => loadConfig({ ONCEFLOW_STRICT_SECRETS: 'true', ONCEFLOW_TENANTS: `acme:${weak}` })).toThrow(/ONCEFLOW_TENANTS: the keys of acme/);
    }
    // Outside production a short key is still accepted (local runs and tests).
    expect(loadConfig({ ONCEFLOW_TENANTS: 'acme:demo-key-change-me' }).ONCEFLOW_TENANTS).toHaveLength(1);
    for (const strong of [randomBytes(16).toString('hex'), generateApiKey(), randomBytes(24).toString('base64url')]) {
      expect(loadConfig({ NODE_ENV: 'production', ONCEFLOW_TENANTS: `acme:${strong}` }).ONCEFLOW_TENANTS).toEqual([{ tenantId: 'acme', apiKey: strong }]);
    }
  });

  it('stops the api at start, with one line naming the variable, when a production key is weak', async () => {
    const api = startProcess('api', {
      DATABASE_URL: testInfra().databaseUrl,
      NODE_ENV: 'production',
      ONCEFLOW_TENANTS: 'acme:changeme-please',
    });
    expect(await api.exited).toBe(2);
    expect(api.output()).toMatch(/invalid configuration: ONCEFLOW_TENANTS: the keys of acme have less than 128 bits of entropy/);
    expect(api.output()).not.toContain('changeme-please');
    expect(api.output()).not.toMatch(/\n\s+at /);
  });
});
