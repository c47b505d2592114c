import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { migrate } from '../../src/db/migrate';
import { createPool, type Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { scrapedMetricValue } from '../fakes/metrics';
import { startOwnPostgres, type OwnPostgres } from '../fakes/own-postgres';

/**
 * The Gemini activities when PostgreSQL fails around a paid call. Stopped for
 * real (not a crash of ours) just as Gemini answers: the worker keeps the paid
 * answer and stores it once PostgreSQL is back, instead of failing the attempt
 * and paying for the same answer again on the retry. Failing before the call:
 * the next attempt's call is a first call, not a retry.
 *
 * Everything runs on a PostgreSQL of this test's own, so stopping it (or
 * hiding a table) touches no other test file.
 */
describe('Gemini activities when PostgreSQL fails around a paid call', () => {
  let postgres: OwnPostgres;
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let worker: RunningProcess | undefined;
  const taskQueue = uniqueTaskQueue('store-retry');

  beforeAll(async () => {
    postgres = await startOwnPostgres();
    pool = createPool({ connectionString: postgres.connectionString, max: 3, applicationName: 'onceflow-test-store-retry' });
    await migrate(pool);
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    api = await startTestApi({ pool, temporal, taskQueue, config: { DATABASE_URL: postgres.connectionString } });
    tenant = await createApiTenant(pool);
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await api.close();
    await gemini.close();
    await temporal.connection.close();
    await pool.end();
    await postgres.close();
  });

  let metricsPort: number;
  beforeAll(async () => {
    metricsPort = await findFreePort();
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, databaseUrl: postgres.connectionString, metricsPort });
  }, 180_000);
  beforeEach(() => fake.reset());

  /** Starts the operation, stops PostgreSQL while Gemini holds the paid answer, lets it go, starts PostgreSQL again once the worker has met the outage; returns the finished operation. */
  async function answerDuringOutage(type: 'generate-content' | 'generate-report', body: { prompt: string }) {
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const key = randomUUID();
    expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body })).status).toBe(202);
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);

    const outputBefore = worker!.output().length;
    await postgres.stop();
    expect(await fake.release()).toBe(1);
    // The worker has the answer and has found PostgreSQL gone (whatever it then does about it).
    await eventually('the worker to meet the outage', async () => worker!.output().slice(outputBefore).includes('ECONNREFUSED'), 60_000);
    await postgres.start();

    const operation = async () => (await pool.query('SELECT operation_id, status FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0];
    await eventually('the operation to finish', async () => (await operation())?.status !== 'running', 120_000);
    return (await operation()) as { operation_id: string; status: string };
  }
  const bills = async (operationId: string) => (await pool.query('SELECT 1 FROM usage_ledger WHERE operation_id = $1', [operationId])).rows;
  const events = async (operationId: string) =>
    (await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows.map((r) => r.event_type);

  it('a generated answer is stored once PostgreSQL is back: one paid call, one bill, one event', async () => {
    const operation = await answerDuringOutage('generate-content', { prompt: 'an answer worth keeping' });
    expect(operation.status).toBe('succeeded');
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await bills(operation.operation_id)).toHaveLength(1);
    expect(await events(operation.operation_id)).toEqual(['operation.succeeded']);
    expect((await pool.query('SELECT model, outcome FROM gemini_attempts WHERE operation_id = $1', [operation.operation_id])).rows).toEqual([{ model: 'gemini-2.5-flash', outcome: 'succeeded' }]);
  }, 300_000);

  it('does not count a call as a retry when the attempt before it failed without reaching Gemini', async () => {
    const metric = (name: string, labels: Record<string, string>) => scrapedMetricValue(`http://127.0.0.1:${metricsPort}/metrics`, name, labels);
    const retries = () => metric('onceflow_gemini_retries_total', { model: 'gemini-2.5-flash', operation_type: 'generate-content' });
    const retriesBefore = await retries();
    // The first attempt cannot find the guard's table: it fails before it calls Gemini.
    await pool.query('ALTER TABLE effects RENAME TO effects_hidden_by_test');
    try {
      const key = randomUUID();
      const created = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'first try, second attempt' } });
      expect(created.status).toBe(202);
      await eventually('the first attempt to fail on PostgreSQL', async () => {
        const { raw } = await temporal.workflow.getHandle(created.json!.workflowId).describe();
        const activity = raw.pendingActivities?.find((a) => a.activityType?.name === 'generateWithGemini');
        return activity?.lastFailure?.message?.includes('relation "effects" does not exist');
      }, 60_000);
      await pool.query('ALTER TABLE effects_hidden_by_test RENAME TO effects');
      await eventually('the operation to succeed', async () =>
        (await pool.query('SELECT status FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, key])).rows[0]?.status === 'succeeded', 120_000);
    } finally {
      await pool.query('ALTER TABLE IF EXISTS effects_hidden_by_test RENAME TO effects');
    }
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await retries() - retriesBefore).toBe(0);
  }, 300_000);

  it('a submitted interaction id is stored once PostgreSQL is back: one interactions.create, one bill, one event', async () => {
    const operation = await answerDuringOutage('generate-report', { prompt: 'a report worth keeping' });
    expect(operation.status).toBe('succeeded');
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    expect(await bills(operation.operation_id)).toHaveLength(1);
    expect(await events(operation.operation_id)).toEqual(['operation.succeeded']);
    expect((await pool.query('SELECT submit_attempts, status FROM gemini_interactions WHERE operation_id = $1', [operation.operation_id])).rows).toEqual([{ submit_attempts: 1, status: 'completed' }]);
  }, 300_000);
});
