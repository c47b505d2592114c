import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import pg from 'pg';
import { ensureNamespace } from '../../dev/temporal-cluster/namespace';
import { CLUSTER_DATABASES } from '../../dev/temporal-cluster/schema';
import type { Pool } from '../../src/db/pool';
import { allSearchAttributes } from '../../workflows/definitions';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { connectTestClient, startTestWorker, type TestWorker } from '../helpers/temporal';
import { until } from '../helpers/until';

/**
 * What the cluster tier adds over the dev server: Onceflow's namespace and
 * search attributes registered the operator's way, and workflows spread over
 * several history shards whose state lives in PostgreSQL.
 */
describe('Onceflow on a Temporal cluster', () => {
  let temporal: Client;
  let persistence: pg.Client;
  let pool: Pool;
  let worker: TestWorker;
  let api: TestApi;

  beforeAll(async () => {
    temporal = await connectTestClient();
    const url = new URL(testInfra().databaseUrl);
    url.pathname = `/${CLUSTER_DATABASES.persistence}`;
    persistence = new pg.Client({ connectionString: url.toString() });
    await persistence.connect();
    pool = createTestPool();
    worker = await startTestWorker({ pool });
    api = await startTestApi({ pool, temporal, taskQueue: worker.taskQueue });
  });
  afterAll(async () => {
    await api.close();
    await worker.stop();
    await pool.end();
    await persistence.end();
    await temporal.connection.close();
  });

  it('registers the namespace with 72 h retention and every search attribute as Keyword, and a second setup changes nothing', async () => {
    const { temporalAddress: address, temporalNamespace: namespace } = testInfra();
    const before = await temporal.workflowService.describeNamespace({ namespace });
    await ensureNamespace({ address, namespace });
    const after = await temporal.workflowService.describeNamespace({ namespace });
    expect(tsToMs(after.config!.workflowExecutionRetentionTtl)).toBe(72 * 3600 * 1000);
    expect(after.namespaceInfo!.id).toBe(before.namespaceInfo!.id);
    const { customAttributes } = await temporal.connection.operatorService.listSearchAttributes({ namespace });
    // 2 is INDEXED_VALUE_TYPE_KEYWORD in temporal/api/enums/v1/common.proto
    for (const key of allSearchAttributes) expect([key.name, customAttributes?.[key.name]]).toEqual([key.name, 2]);
  });

  it('keeps workflow state in PostgreSQL spread over more than one history shard', async () => {
    const tenant = await createApiTenant(pool);
    const keys = Array.from({ length: 12 }, () => randomUUID());
    const answers = await Promise.all(keys.map((key) => postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: key }, headers: { prefer: 'wait=60' } })));
    expect(answers.map((a) => a.status)).toEqual(keys.map(() => 200));
    const { rows: operations } = await pool.query<{ workflow_id: string }>('SELECT workflow_id FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(operations).toHaveLength(keys.length);
    const { rows: shards } = await persistence.query<{ shard_id: number }>(
      'SELECT DISTINCT shard_id FROM current_executions WHERE workflow_id = ANY($1::text[])',
      [operations.map((o) => o.workflow_id)],
    );
    // 12 workflow ids hashed over 4 shards all landing on one: (1/4)^11, about 2e-7.
    expect(shards.length).toBeGreaterThan(1);
  });

  it('finds a finished operation by its tenant search attribute once SQL visibility catches up', async () => {
    const tenant = await createApiTenant(pool);
    const key = randomUUID();
    const answer = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: key }, headers: { prefer: 'wait=60' } });
    expect(answer.status).toBe(200);
    // Visibility on a real cluster is written by a separate task queue: eventually consistent, so poll.
    await until(async () => {
      const listed = [];
      for await (const wf of temporal.workflow.list({ query: `OnceflowTenant = '${tenant.tenantId}' AND ExecutionStatus = 'Completed'` })) listed.push(wf.workflowId);
      return listed.length === 1;
    }, 'the operation is listed by OnceflowTenant', 30_000);
  });
});
