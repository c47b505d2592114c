import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import { postOperation, type TestApi } from '../helpers/api';
import { startTestStack, type ApiTenant } from '../helpers/stack';
import type { FakeGeminiControl } from '../fakes/gemini';

/**
 * Gemini text that PostgreSQL cannot store as it is (U+0000, unpaired
 * surrogates) must not fail the store after the call was paid, which would
 * retry and pay again. Such characters are stored, answered and replayed as
 * U+FFFD; every other character is kept as Gemini sent it.
 */
describe('Gemini text holding NUL or lone surrogates', () => {
  let pool: Pool;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let tenant: ApiTenant;
  let close = async () => {};

  beforeAll(async () => {
    ({ pool, geminiControl: fake, api, tenant, close } = await startTestStack({
      gemini: { interactions: { durationMs: 50 } },
      tenant: 'text',
      worker: {},
      api: {},
    }));
  });
  beforeEach(() => fake.reset());
  afterAll(() => close());

  // NUL, a high surrogate with no low one, a low one with no high one, and a proper pair (kept).
  const sent = 'before\u0000after | \ud83d alone | \ude00 alone | pair \ud83d\ude00 | é';
  const stored = 'before\ufffdafter | \ufffd alone | \ufffd alone | pair \ud83d\ude00 | é';

  it.each(['generate-content', 'generate-report'])('%s: one paid call, the answer stored with U+FFFD in their place, replayed byte for byte', async (type) => {
    await fake.script([{ kind: 'ok', text: sent }]);
    const key = randomUUID();
    const body = { prompt: 'say something unstorable' };
    const first = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body, headers: { prefer: 'wait=60' } });
    expect(first.status).toBe(200);
    expect(first.json!.result.text).toBe(stored);
    expect(await fake.calls({ paid: true })).toHaveLength(1);

    const repeat = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, type, body });
    expect(repeat.status).toBe(200);
    expect(repeat.headers.get('idempotent-replayed')).toBe('true');
    expect(JSON.stringify(repeat.json!.result)).toBe(JSON.stringify(first.json!.result));
    expect(repeat.json!.result.text).toBe(stored);
    const { rows } = await pool.query(`SELECT result->>'text' AS text FROM operations WHERE tenant_id = $1 AND idempotency_key = $2`, [tenant.tenantId, key]);
    expect(rows[0].text).toBe(stored);
    expect(await fake.calls({ paid: true })).toHaveLength(1);
  }, 120_000);

  it('an error message holding NUL is recorded too, and the retry that follows succeeds', async () => {
    await fake.script([{ kind: 'error', status: 503, message: 'overloaded\u0000\ud800' }, { kind: 'ok', text: 'fine' }], 'gemini-2.5-flash');
    const response = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt: 'retry me' }, headers: { prefer: 'wait=60' } });
    expect(response.status).toBe(200);
    const attempts = response.json!.result.attempts as { outcome: string; error?: string }[];
    expect(attempts.map((a) => a.outcome)).toEqual(['unavailable', 'succeeded']);
    expect(attempts[0]!.error).toContain('overloaded\ufffd\ufffd');
  }, 120_000);
});
