import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';

describe('concurrent identical requests', () => {
  let pool: Pool;
  let temporal: Client;
  let api: TestApi;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, api, close } = await startTestStack({ worker: {}, api: {} }));
  });
  afterAll(() => close());

  it('starts exactly one workflow execution for 200 identical requests fired at once, and none of them gets a 5xx', async () => {
    const tenant = await createApiTenant(pool);
    const key = randomUUID();
    const body = { prompt: 'one and only one' };
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body })),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(statuses.every((s) => s === 202 || s === 409 || s === 200)).toBe(true);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    for (const replay of responses.filter((r) => r.status === 200)) expect(replay.headers.get('idempotent-replayed')).toBe('true');

    // Counted by Temporal's visibility, not by our own table, once every run
    // under the key has closed (visibility is eventually consistent: counting
    // at the first sighting could miss a second execution still being indexed).
    const query = `OnceflowTenant = '${tenant.tenantId}' AND OnceflowIdempotencyKey = '${key}'`;
    const workflowId = responses.find((r) => r.status === 202)!.json!.workflowId as string;
    await temporal.workflow.getHandle(workflowId).result();
    let closed = 0;
    for (let i = 0; i < 100 && closed === 0; i++) {
      closed = (await temporal.workflow.count(`${query} AND ExecutionStatus != 'Running'`)).count;
      if (closed === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(closed).toBeGreaterThan(0);
    expect((await temporal.workflow.count(query)).count).toBe(1);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key]);
    expect(rows[0].n).toBe(1);
  });
});
