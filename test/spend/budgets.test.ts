import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, type TestApi } from '../helpers/api';
import { startTestStack, type ApiTenant } from '../helpers/stack';
import { eventually, type FakeGeminiControl } from '../fakes/gemini';
import { scrapedMetricValue } from '../fakes/metrics';
import { expectExit, parseJson, runCli } from '../cli/run-cli';

/**
 * Per-tenant spend caps against the real worker, facade, PostgreSQL and
 * Temporal; the offline model server counts the calls that were paid for.
 *
 * Figures are worked out here from gemini-2.5-flash's list prices ($0.30 per
 * million prompt tokens, $2.50 per million output tokens), not from the code:
 * a 9-byte prompt with maxOutputTokens 1000 reserves at most
 * ceil(9 × 0.30 + 1000 × 2.50) = 2,503 micro-USD; the offline server counts
 * ceil(9 / 4) = 3 prompt tokens and 4,000 characters of answer as 1,000
 * output tokens, an actual cost of round(3 × 0.30 + 1000 × 2.50) = 2,501.
 */
describe('per-tenant spend caps', () => {
  let pool: Pool;
  let fake: FakeGeminiControl;
  let api: TestApi;
  let capped: ApiTenant;
  let metricsUrl: string;
  let close = async () => {};
  const estimate = 2_503;
  const actual = 2_501;
  const cap = 10 * estimate;

  beforeAll(async () => {
    ({ pool, geminiControl: fake, tenant: capped, workerProcess: { metricsUrl }, api, close } = await startTestStack({
      gemini: { interactions: { durationMs: 50 } },
      tenant: 'capped',
      // The cap comes from configuration, as an operator would provision it.
      workerProcess: { env: ({ tenant }) => ({ ONCEFLOW_BUDGETS: `${tenant!.tenantId}:month:${cap / 1_000_000}`, LOG_LEVEL: 'info' }) },
      api: {},
    }));
  }, 180_000);
  beforeEach(() => fake.reset());
  afterAll(() => close());

  const metric = (name: string, labels: Record<string, string>) => scrapedMetricValue(metricsUrl, name, labels);
  const spent = async (tenantId: string, period = 'month') =>
    Number((await pool.query('SELECT spent_micro_usd FROM budget_spend WHERE tenant_id = $1 AND period = $2', [tenantId, period])).rows[0]?.spent_micro_usd ?? 0);
  const operations = async (tenantId: string) =>
    (await pool.query<{ operation_id: string; idempotency_key: string; status: string; error: { type: string } | null; released: boolean }>(
      'SELECT operation_id, idempotency_key, status, error, released FROM operations WHERE tenant_id = $1', [tenantId])).rows;
  const allFinished = (tenantId: string, count: number) => eventually(`${count} operations to finish`, async () => {
    const rows = await operations(tenantId);
    return rows.length === count && rows.every((r) => r.status === 'succeeded' || r.status === 'failed') ? rows : undefined;
  }, 240_000);

  it('100 concurrent operations against a cap worth 10 never overspend: 10 paid calls, 90 budget-exceeded (402, replayed) with no call', async () => {
    await fake.script(Array.from({ length: 100 }, () => ({ kind: 'ok' as const, text: 'x'.repeat(4_000) })), 'gemini-2.5-flash');
    const keys: string[] = Array.from({ length: 100 }, () => randomUUID());
    const accepted = await Promise.all(keys.map((key, i) =>
      postOperation(api.baseUrl, { apiKey: capped.apiKey, key, body: { prompt: `spend-${String(i).padStart(3, '0')}`, maxOutputTokens: 1_000 } })));
    expect(accepted.map((r) => r.status).filter((s) => s !== 202)).toEqual([]);
    const rows = await allFinished(capped.tenantId, 100);

    const paidCalls = await fake.calls({ paid: true });
    const succeeded = rows.filter((r) => r.status === 'succeeded');
    const refused = rows.filter((r) => r.status === 'failed');
    expect(paidCalls).toHaveLength(10);
    expect(succeeded).toHaveLength(10);
    expect(refused.map((r) => [r.error?.type, r.released])).toEqual(Array.from({ length: 90 }, () => ['budget-exceeded', false]));
    // Not handed to the fallback model either: the cap is the tenant's, not the model's.
    expect(new Set(paidCalls.map((c) => c.model))).toEqual(new Set(['gemini-2.5-flash']));
    // The ledger: actual costs replaced the estimates, and they sum within the cap.
    expect(await spent(capped.tenantId)).toBe(10 * actual);
    expect(10 * actual).toBeLessThanOrEqual(cap);
    const billed = await pool.query('SELECT sum(cost_micros)::int AS cost FROM usage_ledger WHERE tenant_id = $1', [capped.tenantId]);
    expect(billed.rows[0].cost).toBe(10 * actual);
    const refusedIds = refused.map((r) => r.operation_id);
    expect((await pool.query('SELECT 1 FROM gemini_attempts WHERE operation_id = ANY($1::uuid[])', [refusedIds])).rows).toEqual([]);

    const repeat = await postOperation(api.baseUrl, { apiKey: capped.apiKey, key: refused[0]!.idempotency_key, body: { prompt: 'ignored: the fingerprint differs' } });
    expect(repeat.status).toBe(422); // a different payload is still a reused key
    const index = keys.indexOf(refused[0]!.idempotency_key);
    const replay = await postOperation(api.baseUrl, { apiKey: capped.apiKey, key: refused[0]!.idempotency_key, body: { prompt: `spend-${String(index).padStart(3, '0')}`, maxOutputTokens: 1_000 } });
    expect(replay.status).toBe(402);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.json!.type).toBe('https://onceflow.dev/problems/budget-exceeded');
    expect(await fake.calls({ paid: true })).toHaveLength(10);

    const labels = { tenant: capped.tenantId, period: 'month' };
    expect(await metric('onceflow_budget_refused_calls_total', { tenant: capped.tenantId })).toBe(90);
    expect(await metric('onceflow_budget_limit_micro_usd', labels)).toBe(cap);
    expect(await metric('onceflow_budget_spent_micro_usd', labels)).toBe(10 * actual);
    expect(await metric('onceflow_budget_remaining_micro_usd', labels)).toBe(cap - 10 * actual);
    expect(await metric('onceflow_gemini_estimated_cost_micro_usd_total', { tenant: capped.tenantId })).toBe(10 * actual);
  }, 300_000);

  it('set by the CLI: the actual cost replaces the estimate, a call Gemini refused gives its reservation back, and a report that could pass the cap is not submitted', async () => {
    const tenant = await createApiTenant(pool, 'cli-capped');
    expectExit(await runCli(['budgets', 'set', tenant.tenantId, 'day', '0.1']), 0);
    expectExit(await runCli(['budgets', 'set', `no-such-${randomUUID().slice(0, 8)}`, 'day', '1']), 3);
    expectExit(await runCli(['budgets', 'set', tenant.tenantId, 'week', '1']), 2);

    const done = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt: 'what does it cost?', maxOutputTokens: 2_000 }, headers: { prefer: 'wait=60' } });
    expect(done.status).toBe(200);
    const { promptTokens, outputTokens } = done.json!.result.usage;
    const cost = Math.round(promptTokens * 0.3 + outputTokens * 2.5);
    expect(await spent(tenant.tenantId, 'day')).toBe(cost);

    await fake.script([{ kind: 'error', status: 400, message: 'Request contains an invalid argument.' }], 'gemini-2.5-flash');
    const rejected = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt: 'refused', maxOutputTokens: 2_000 }, headers: { prefer: 'wait=60' } });
    expect(rejected.status).toBe(422);
    expect(await spent(tenant.tenantId, 'day')).toBe(cost);

    // A report may write up to 65,536 output tokens: 163,840 micro-USD or more at the flash price, past a 0.1 USD cap.
    const report = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), type: 'generate-report', body: { prompt: 'a long report' }, headers: { prefer: 'wait=60' } });
    expect(report.status).toBe(402);
    expect(report.json!.type).toBe('https://onceflow.dev/problems/budget-exceeded');
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['generateContent', 'generateContent']);
    expect(await spent(tenant.tenantId, 'day')).toBe(cost);

    const listed = parseJson(await runCli(['budgets', 'list', tenant.tenantId, '--json']));
    expect(listed).toEqual([expect.objectContaining({ tenantId: tenant.tenantId, period: 'day', limitMicroUsd: 100_000, spentMicroUsd: cost, remainingMicroUsd: 100_000 - cost })]);
    expectExit(await runCli(['budgets', 'remove', tenant.tenantId, 'day']), 0);
    expect(parseJson(await runCli(['budgets', 'list', tenant.tenantId, '--json']))).toEqual([]);
  }, 300_000);
});
