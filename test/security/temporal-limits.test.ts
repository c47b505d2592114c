import { randomBytes } from 'node:crypto';
import { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { MAX_IDEMPOTENCY_KEY_LENGTH } from '../../src/idempotency/key';
import { AesGcmPayloadCodec } from '../../src/temporal/codec';
import { provisionTenants } from '../../src/tenants/api-keys';
import { searchAttributes } from '../../workflows/definitions';
import { postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';

/**
 * The largest request validation accepts must start: Temporal refuses a start
 * whose user metadata or search attributes pass its limits, and a refused
 * start is a 503 on every retry with the key left reserved.
 */
describe('the longest key, tenant id and model name validation accepts', () => {
  let pool: Pool;
  let plain: Client;
  let encrypted: Client;
  const apis: TestApi[] = [];
  beforeAll(async () => {
    pool = createTestPool();
    plain = await connectTestClient();
    // Encryption makes every payload larger: the summary must still fit.
    const codec = new AesGcmPayloadCodec([{ id: 'limits-key-with-a-long-identifier', key: randomBytes(32) }]);
    encrypted = new Client({ connection: plain.connection, namespace: plain.options.namespace, dataConverter: { payloadCodecs: [codec] } });
  });
  afterAll(async () => {
    for (const api of apis) await api.close();
    await plain.connection.close();
    await pool.end();
  });

  it.each([
    ['payloads in clear', () => plain],
    ['payloads encrypted', () => encrypted],
  ])('starts its workflow (%s), with a summary inside Temporal’s limit and the key findable', async (_name, client) => {
    const model = 'gemini-'.padEnd(100, '9');
    // The longest model an operator can allow: it must reach Temporal's fields too.
    const api = await startTestApi({ pool, temporal: client(), taskQueue: uniqueTaskQueue('limits'), config: { GEMINI_ALLOWED_MODELS: [model] } });
    apis.push(api);
    const tenant = { tenantId: `t${randomBytes(4).toString('hex')}`.padEnd(64, 'x'), apiKey: `key-${randomBytes(16).toString('hex')}` };
    await provisionTenants(pool, [tenant]);
    // Spaces inside (fetch trims them at the ends).
    const key = `${`k${randomBytes(8).toString('hex')}`.padEnd(MAX_IDEMPOTENCY_KEY_LENGTH - 1, '~ ')}!`;
    expect([tenant.tenantId.length, key.length, model.length]).toEqual([64, 255, 100]);

    const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'the longest of everything', model } });
    expect(created.status).toBe(202);
    const description = await client().workflow.getHandle(created.json!.workflowId).describe();
    expect(description.typedSearchAttributes.get(searchAttributes.idempotencyKey)).toBe(key);
    expect(description.typedSearchAttributes.get(searchAttributes.tenant)).toBe(tenant.tenantId);
    const summary = (await description.staticSummary())!;
    expect(summary).toContain(tenant.tenantId);
    expect(Buffer.byteLength(summary)).toBeLessThanOrEqual(200);
    expect(summary).not.toContain('the longest of everything');
    expect(await description.staticDetails()).toContain(key);
    expect(created.json!.workflowId.length).toBeLessThan(1000);
  });
});
