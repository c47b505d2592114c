import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import type { Behaviour } from '../../dev/gemini-offline/server';
import { postOperation, type TestApi } from '../helpers/api';
import type { RunningProcess } from '../helpers/processes';
import { startTestStack, type ApiTenant } from '../helpers/stack';
import { eventually, type FakeGeminiControl } from '../fakes/gemini';
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
  let fake: FakeGeminiControl;
  let worker: RunningProcess & { metricsUrl: string };
  let api: TestApi;
  let tenant: ApiTenant;
  let close = async () => {};

  beforeAll(async () => {
    ({ pool, geminiControl: fake, workerProcess: worker, api, tenant, close } = await startTestStack({
      gemini: { interactions: { durationMs: 50 } },
      tenant: 'credentials',
      workerProcess: {},
      api: {},
    }));
  }, 180_000);
  beforeEach(() => fake.reset());
  afterAll(() => close());

  const credentialErrors = (status: string) => scrapedMetricValue(worker.metricsUrl, 'onceflow_gemini_credential_errors_total', { status });
  const finished = async (key: string) => eventually('the operation to finish', async () => {
    const { rows } = await pool.query(
      `SELECT status, error, released FROM operations
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
      const first = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body, headers: { prefer: 'wait=60' } });
      expect({ name, status: first.status, type: first.json?.type }).toEqual({ name, status: 503, type: 'https://onceflow.dev/problems/provider-unavailable' });
      const failed = await finished(key);
      expect({ name, status: failed.status, type: failed.error.type, released: failed.released })
        .toEqual({ name, status: 'failed', type: 'provider-unavailable', released: true });
      // Neither retried nor handed to the next model: the same key would be refused again, and nothing was the prompt's fault.
      expect((await fake.calls({ paid: true })).length).toBe(1);
      expect(await credentialErrors(String(refusal.status)) - before).toBe(1);
      // The worker's stdout reaches this process through a pipe, which can trail the HTTP answer.
      const log = await eventually('the worker to log the refused key', async () =>
        worker.output().slice(outputBefore).split('\n').find((line) => line.includes('refused the deployment API key')));
      expect(JSON.parse(log).level).toBe(50); // pino's error level

      // The operator fixes the key: a repeat of the same request starts a new run, which succeeds.
      await fake.reset();
      const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body, headers: { prefer: 'wait=60' } });
      expect({ name, status: repeat.status, replayed: repeat.headers.get('idempotent-replayed') }).toEqual({ name, status: 200, replayed: null });
      expect(repeat.json!.status).toBe('succeeded');
    }
  }, 300_000);

  it('a report whose interaction reads are refused for the key raises the same operator signal, and its failure releases the key', async () => {
    await fake.interactions({ hold: true });
    await fake.script([{ kind: 'error', status: 403, message: 'Permission denied: API key revoked.', reason: 'API_KEY_INVALID' }], 'interactions.get');
    const before = await credentialErrors('403');
    const key = randomUUID();
    expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type: 'generate-report', body: { prompt: 'revoked mid-report' } })).status).toBe(202);
    const failed = await finished(key);
    expect({ status: failed.status, released: failed.released }).toEqual({ status: 'failed', released: true });
    expect(await credentialErrors('403') - before).toBe(1);
    expect((await fake.calls()).filter((c) => c.operation === 'interactions.get' && c.status === 403)).toHaveLength(1);
  }, 120_000);

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
