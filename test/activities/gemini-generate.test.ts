import { randomUUID } from 'node:crypto';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import { createCompleteOperation } from '../../activities/complete-operation';
import { createGenerateWithGemini, type GeminiActivityDeps, type GenerateWithGeminiInput, type GenerateWithGeminiResult } from '../../activities/gemini-generate';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createPool, type Pool } from '../../src/db/pool';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics, type GeminiMetrics } from '../../src/integrations/gemini/metrics';
import { removeBudget, reserveSpend, setBudget } from '../../src/spend/ledger';
import { withTransaction } from '../../src/db/transaction';
import { FailureType } from '../../workflows/failure-types';
import { createTestPool, createTestTenant } from '../helpers/db';
import { QuietMockActivityEnvironment as MockActivityEnvironment } from '../helpers/mock-activity';
import { recordStatements } from '../helpers/statements';
import { eventually, FakeGeminiControl } from '../fakes/gemini';
import { metricValue } from '../fakes/metrics';

/**
 * generateWithGemini run in a MockActivityEnvironment (no Temporal server):
 * its real guard on real PostgreSQL, its real @google/genai client against the
 * offline model server, its heartbeats, its cancellation and the failures it
 * hands the workflow.
 */
describe('generateWithGemini, one activity attempt', () => {
  let pool: Pool;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let tenantId: string;
  let registry: Registry;
  let metrics: GeminiMetrics;
  let statements: ReturnType<typeof recordStatements>;

  beforeAll(async () => {
    pool = createTestPool();
    statements = recordStatements(pool);
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    tenantId = await createTestTenant(pool);
  });
  beforeEach(async () => {
    await fake.reset();
    registry = new Registry();
    metrics = createGeminiMetrics(registry);
  });
  afterAll(async () => {
    await gemini.close();
    await pool.end();
  });

  const activity = (overrides: { pool?: Pool } = {}) => createGenerateWithGemini({
    pool: overrides.pool ?? pool,
    gemini: createGeminiClient({ apiKey: 'test-key', baseUrl: gemini.url, timeoutMs: 10_000 }),
    geminiMetrics: metrics,
  });
  const input = (tenant = tenantId): GenerateWithGeminiInput => {
    const operationId = randomUUID();
    return { operationId, workflowId: `wf-${operationId}`, tenantId: tenant, operationType: 'generate-content', model: 'gemini-2.5-flash', request: { prompt: 'one paid call' } };
  };
  const failureOf = async (promise: Promise<unknown>): Promise<ApplicationFailure> => {
    const error = await promise.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    return error as ApplicationFailure;
  };
  const effectRows = async (operationId: string) => (await pool.query('SELECT step FROM effects WHERE operation_id = $1', [operationId])).rows;

  it('costs an uncapped tenant two reads before the call and one transaction after: 6 statements, the attempts read included', async () => {
    const call = input();
    statements.reset();
    const result = await new MockActivityEnvironment({ attempt: 1 }).run(activity(), call) as GenerateWithGeminiResult;
    expect(result.attempts).toEqual([expect.objectContaining({ model: 'gemini-2.5-flash', outcome: 'succeeded', promptTokens: result.usage.promptTokens })]);
    const sent = [...statements.statements];
    // claim: the stored answer, the spend standing; store: BEGIN, the effect row, the attempt row with every attempt, COMMIT
    expect(sent).toHaveLength(6);
    expect(sent.filter((s) => s === 'BEGIN')).toHaveLength(1);
    expect(sent.indexOf('BEGIN')).toBe(2);
    expect(sent.at(-1)).toBe('COMMIT');
    expect(sent.some((s) => s.includes('budget_reservations') && s.includes('UPDATE'))).toBe(false);
  });

  it('costs a capped tenant the reservation transaction before the call and the actual cost in the store: 12 statements', async () => {
    const capped = await createTestTenant(pool);
    await setBudget(pool, { tenantId: capped, period: 'day', limitMicroUsd: 1_000_000_000 });
    const call = input(capped);
    statements.reset();
    await new MockActivityEnvironment({ attempt: 1 }).run(activity(), call);
    const sent = [...statements.statements];
    // claim: the stored answer, the spend standing, then BEGIN, the reservation, the period rows, the spend update, COMMIT;
    // store: BEGIN, the effect row, the attempt row, the actual cost, COMMIT
    expect(sent.filter((s) => s === 'BEGIN')).toHaveLength(2);
    expect(sent).toHaveLength(12);
    const [reservation] = (await pool.query('SELECT estimate_micro_usd, actual_micro_usd, settled_at FROM budget_reservations WHERE operation_id = $1', [call.operationId])).rows;
    expect(reservation).toMatchObject({ settled_at: expect.any(Date) });
    expect(Number(reservation.actual_micro_usd)).toBeLessThan(Number(reservation.estimate_micro_usd));
  });

  it('still settles the reservation of an earlier attempt after the tenant’s cap was removed', async () => {
    const tenant = await createTestTenant(pool);
    await setBudget(pool, { tenantId: tenant, period: 'day', limitMicroUsd: 1_000_000_000 });
    const call = input(tenant);
    // What an earlier attempt whose answer was lost leaves: its worst case reserved, unsettled.
    await withTransaction(pool, (tx) => reserveSpend(tx, { operationId: call.operationId, step: 'gemini:gemini-2.5-flash', tenantId: tenant, estimateMicroUsd: 5_000 }));
    await removeBudget(pool, { tenantId: tenant, period: 'day' });
    await new MockActivityEnvironment({ attempt: 2 }).run(activity(), call);
    const [reservation] = (await pool.query('SELECT actual_micro_usd, settled_at FROM budget_reservations WHERE operation_id = $1', [call.operationId])).rows;
    expect(reservation).toMatchObject({ settled_at: expect.any(Date) });
    expect(Number(reservation.actual_micro_usd)).toBeLessThan(5_000);
  });

  describe('finishing a success in the same activity (finishOnSuccess)', () => {
    const finishing = (completeOperation: GeminiActivityDeps['completeOperation']) => createGenerateWithGemini({
      pool,
      gemini: createGeminiClient({ apiKey: 'test-key', baseUrl: gemini.url, timeoutMs: 10_000 }),
      geminiMetrics: metrics,
      completeOperation,
    });
    const finishingInput = () => ({ ...input(), finishOnSuccess: { idempotencyKey: `key-${randomUUID()}` } });
    const billsAndEvents = async (operationId: string) => ({
      bills: (await pool.query('SELECT total_tokens FROM usage_ledger WHERE operation_id = $1', [operationId])).rows,
      events: (await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows,
    });

    it('writes the result, one bill and one event after the answer is stored, and a retried attempt does neither again', async () => {
      const call = finishingInput();
      const activityFn = finishing(createCompleteOperation({ pool }));
      const first = await new MockActivityEnvironment({ attempt: 1 }).run(activityFn, call) as GenerateWithGeminiResult;
      expect(first.finished).toBe(true);
      const again = await new MockActivityEnvironment({ attempt: 2 }).run(activityFn, call) as GenerateWithGeminiResult;
      expect(again).toEqual(first);
      expect(await fake.calls({ paid: true })).toHaveLength(1);
      expect(await billsAndEvents(call.operationId)).toEqual({
        bills: [{ total_tokens: first.usage.totalTokens }],
        events: [{ event_type: 'operation.succeeded' }],
      });
    });

    it('still returns the paid answer, unfinished, when finishing fails: the workflow finishes it, and Gemini is not paid again', async () => {
      const call = finishingInput();
      const result = await new MockActivityEnvironment({ attempt: 1 }).run(finishing(async () => {
        throw new Error('connection terminated unexpectedly');
      }), call) as GenerateWithGeminiResult;
      expect(result).toMatchObject({ model: 'gemini-2.5-flash', attempts: [expect.objectContaining({ outcome: 'succeeded' })] });
      expect(result.finished).toBeUndefined();
      expect(await fake.calls({ paid: true })).toHaveLength(1);
      expect(await billsAndEvents(call.operationId)).toEqual({ bills: [], events: [] });
    });

    it('leaves finishing to the workflow for runs that do not ask (recorded before the activity finished)', async () => {
      const call = input();
      let finished = 0;
      const result = await new MockActivityEnvironment({ attempt: 1 }).run(finishing(async () => void finished++), call) as GenerateWithGeminiResult;
      expect(result.finished).toBeUndefined();
      expect(finished).toBe(0);
    });
  });

  it('reuses the stored answer on a later attempt without calling Gemini, and counts the avoided call', async () => {
    const call = input();
    const first = await new MockActivityEnvironment({ attempt: 1 }).run(activity(), call);
    const again = await new MockActivityEnvironment({ attempt: 2 }).run(activity(), call);
    expect(again).toEqual(first);
    expect(await fake.calls({ paid: true })).toHaveLength(1);
    expect(await metricValue(registry, 'onceflow_gemini_calls_avoided_total', { model: 'gemini-2.5-flash' })).toBe(1);
  });

  it('heartbeats while the call is in flight', async () => {
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    // heartbeatTimeout 3 s: one beat a second, the first after a second.
    const env = new MockActivityEnvironment({ attempt: 1, heartbeatTimeoutMs: 3_000 });
    let beats = 0;
    env.on('heartbeat', () => beats++);
    const running = env.run(activity(), input());
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);
    await eventually('two heartbeats during the call', async () => beats >= 2, 10_000);
    expect(await fake.release()).toBe(1);
    await expect(running).resolves.toMatchObject({ model: 'gemini-2.5-flash' });
  });

  it('stops waiting for Gemini when Temporal cancels the attempt: cancelled, nothing stored', async () => {
    await fake.script([{ kind: 'ok', hold: true }], 'gemini-2.5-flash');
    const call = input();
    const env = new MockActivityEnvironment({ attempt: 1, heartbeatTimeoutMs: 3_000 });
    const running = env.run(activity(), call);
    await eventually('the paid call at the fake Gemini', async () => (await fake.calls({ paid: true })).length === 1);
    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    expect(await effectRows(call.operationId)).toEqual([]);
    await fake.release();
  });

  it('hands a 429 to Temporal with the server’s delay and the attempts so far', async () => {
    await fake.script([{ kind: 'error', status: 429, retryDelaySeconds: 3 }], 'gemini-2.5-flash');
    const failure = await failureOf(new MockActivityEnvironment({ attempt: 1 }).run(activity(), input()));
    expect(failure).toMatchObject({ type: FailureType.GeminiRateLimited, nonRetryable: false, nextRetryDelay: 3_000 });
    expect(failure.details?.[0]).toEqual({ status: 429, model: 'gemini-2.5-flash', attempts: [expect.objectContaining({ outcome: 'rate_limited' })] });
    expect(await metricValue(registry, 'onceflow_gemini_calls_total', { outcome: 'rate_limited' })).toBe(1);
  });

  it('retries a 503 after a jittered delay no longer than the backoff’s ceiling for that attempt', async () => {
    await fake.script([{ kind: 'error', status: 503 }], 'gemini-2.5-flash');
    const failure = await failureOf(new MockActivityEnvironment({ attempt: 2 }).run(activity(), input()));
    expect(failure.type).toBe(FailureType.GeminiUnavailable);
    expect(failure.nonRetryable).toBe(false);
    // geminiBackoff: 1 s doubled once for the third attempt's wait, at least 100 ms.
    const delayMs = Number(failure.nextRetryDelay);
    expect(delayMs).toBeGreaterThanOrEqual(100);
    expect(delayMs).toBeLessThanOrEqual(2_000);
  });

  it('makes a 400 final', async () => {
    await fake.script([{ kind: 'error', status: 400 }], 'gemini-2.5-flash');
    const failure = await failureOf(new MockActivityEnvironment({ attempt: 1 }).run(activity(), input()));
    expect(failure).toMatchObject({ type: FailureType.GeminiRejected, nonRetryable: true });
    expect(failure.details?.[0]).toMatchObject({ status: 400, attempts: [expect.objectContaining({ outcome: 'rejected' })] });
  });

  it('refuses the call, for good and without calling Gemini, when it could pass the tenant’s spend cap', async () => {
    const capped = await createTestTenant(pool);
    await setBudget(pool, { tenantId: capped, period: 'day', limitMicroUsd: 1 });
    const failure = await failureOf(new MockActivityEnvironment({ attempt: 1 }).run(activity(), input(capped)));
    expect(failure).toMatchObject({ type: FailureType.BudgetExceeded, nonRetryable: true });
    expect(await fake.calls({ paid: true })).toHaveLength(0);
    expect(await metricValue(registry, 'onceflow_budget_refused_calls_total', { tenant: capped, period: 'day' })).toBe(1);
  });

  it('fails as DatabaseUnavailable, retryable and without calling Gemini, when PostgreSQL cannot be reached before the call', async () => {
    const unreachable = createPool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', max: 1 });
    try {
      const failure = await failureOf(new MockActivityEnvironment({ attempt: 1 }).run(activity({ pool: unreachable }), input()));
      expect(failure).toMatchObject({ type: FailureType.DatabaseUnavailable, nonRetryable: false });
      expect(await fake.calls({ paid: true })).toHaveLength(0);
    } finally {
      await unreachable.end();
    }
  });
});
