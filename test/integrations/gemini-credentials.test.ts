import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { startOfflineGeminiServer, type Behaviour, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { startWorkerProcess, type RunningProcess } from '../helpers/processes';
import { connectTestClient, uniqueTaskQueue } from '../helpers/temporal';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { scrapedMetricValue } from '../fakes/metrics';

/**
 * Gemini refusing the deployment's own API key is not the tenant's fault: the
 * operation is not burned with a final "prompt rejected" for the key's whole
 * retention. It fails as the service unavailable (503) and releases its key,
 * so a repeat once the operator fixed the key starts a new run; the operator
 * sees a metric and an error log. A 400 on the prompt itself stays final.
 * The offline model server answers with the error bodies Gemini sends.
 */
describe("Gemini refusing the deployment's API key", () => {
  let pool: Pool;
  let temporal: Client;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let worker: RunningProcess;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  let metricsPort: number;
  const taskQueue = uniqueTaskQueue('credentials');

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    gemini = await startOfflineGeminiServer({ interactions: { durationMs: 50 } });
    fake = new FakeGeminiControl(gemini.url);
    metricsPort = await findFreePort();
    worker = await startWorkerProcess({ taskQueue, geminiUrl: gemini.url, metricsPort });
    api = await startTestApi({ pool, temporal, taskQueue });
    tenant = await createApiTenant(pool, 'credentials');
  }, 180_000);
  beforeEach(() => fake.reset());
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await api?.close();
    await gemini?.close();
    await temporal?.connection.close();
    await pool?.end();
  });

  const credentialErrors = (status: string) => scrapedMetricValue(`http://127.0.0.1:${metricsPort}/metrics`, 'onceflow_gemini_credential_errors_total', { status });
  const finished = async (key: string) => eventually('the operation to finish', async () => {
    const { rows } = await pool.query(
      `SELECT status, error, error_status, released FROM operations
        WHERE tenant_id = $1 AND idempotency_key = $2 ORDER BY created_at DESC LIMIT 1`, [tenant.tenantId, key]);
    return rows[0]?.status !== 'running' && rows[0]?.status !== 'reserved' ? rows[0] : undefined;
  }, 90_000);

  const keyRefusals: [string, Behaviour & { kind: 'error' }][] = [
    ['401 UNAUTHENTICATED', { kind: 'error', status: 401, message: 'Request had invalid authentication credentials.' }],
    ['403 PERMISSION_DENIED', { kind: 'error', status: 403, message: 'Permission denied: Consumer has been suspended.', reason: 'CONSUMER_SUSPENDED' }],
    ['400 API_KEY_INVALID', { kind: 'error', status: 400, message: 'API key not valid. Please pass a valid API key.', reason: 'API_KEY_INVALID' }],
  ];

  it.each(['generate-content', 'generate-report'])('%s: each refusal of the key ends as 503 provider-unavailable, releases the key, raises the metric and an error log', async (type) => {
    for (const [name, refusal] of keyRefusals) {
      await fake.reset();
      await fake.script([refusal]);
      const before = await credentialErrors(String(refusal.status));
      const outputBefore = worker.output().length;
      const key = randomUUID();
      const body = { prompt: `key refused: ${name}` };
      expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body })).status).toBe(202);
      const failed = await finished(key);
      expect({ name, status: failed.status, type: failed.error.type, released: failed.released })
        .toEqual({ name, status: 'failed', type: 'provider-unavailable', released: true });
      // Neither retried nor handed to the next model: the same key would be refused again, and nothing was the prompt's fault.
      expect((await fake.calls({ paid: true })).length).toBe(1);
      expect(await credentialErrors(String(refusal.status)) - before).toBe(1);
      const log = worker.output().slice(outputBefore).split('\n').find((line) => line.includes('refused the deployment API key'));
      expect(log && JSON.parse(log).level).toBe(50); // pino's error level

      // The operator fixes the key: a repeat of the same request starts a new run, which succeeds.
      await fake.reset();
      const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body, headers: { prefer: 'wait=60' } });
      expect({ name, status: repeat.status, replayed: repeat.headers.get('idempotent-replayed') }).toEqual({ name, status: 200, replayed: null });
      expect(repeat.json!.status).toBe('succeeded');
    }
  }, 300_000);

  it('a 400 on the prompt itself stays final: 422 prompt-rejected, replayed to repeats, no credential signal', async () => {
    await fake.script([{ kind: 'error', status: 400, message: 'Request contains an invalid argument.', reason: 'BAD_REQUEST' }]);
    const before = await credentialErrors('400');
    const key = randomUUID();
    const body = { prompt: 'a prompt Gemini refuses' };
    expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body })).status).toBe(202);
    const failed = await finished(key);
    expect({ type: failed.error.type, released: failed.released }).toEqual({ type: 'prompt-rejected', released: false });
    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body });
    expect(repeat.status).toBe(422);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect((await fake.calls({ paid: true })).length).toBe(1);
    expect(await credentialErrors('400') - before).toBe(0);
  }, 120_000);
});
