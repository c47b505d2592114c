import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import { createCompleteOperation } from '../../activities/complete-operation';
import {
  createPollInteraction, createSubmitInteraction,
  type InteractionActivityDeps, type PollInteractionInput, type PollInteractionResult, type SubmitInteractionInput, type SubmitInteractionResult,
} from '../../activities/gemini-interactions';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import type { Pool } from '../../src/db/pool';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { FailureType } from '../../workflows/failure-types';
import { createTestPool, createTestTenant } from '../helpers/db';
import { QuietMockActivityEnvironment as MockActivityEnvironment } from '../helpers/mock-activity';
import { recordStatements } from '../helpers/statements';
import { eventually, FakeGeminiControl } from '../fakes/gemini';

/**
 * submitInteraction (generate-report's paid call) and pollInteraction (the
 * read that learns its end) in a MockActivityEnvironment: the guard holding
 * the step, the submission ledger, the finish in the poll, on real PostgreSQL
 * against the offline model server.
 */
describe('submitInteraction, one activity attempt', () => {
  let pool: Pool;
  let gemini: OfflineGeminiServer;
  let fake: FakeGeminiControl;
  let tenantId: string;
  let statements: ReturnType<typeof recordStatements>;

  beforeAll(async () => {
    pool = createTestPool();
    statements = recordStatements(pool);
    gemini = await startOfflineGeminiServer();
    fake = new FakeGeminiControl(gemini.url);
    tenantId = await createTestTenant(pool);
  });
  beforeEach(() => fake.reset());
  afterAll(async () => {
    await gemini.close();
    await pool.end();
  });

  const submit = () => createSubmitInteraction({
    pool,
    gemini: createGeminiClient({ apiKey: 'test-key', baseUrl: gemini.url, timeoutMs: 10_000 }),
    geminiMetrics: createGeminiMetrics(new Registry()),
    modelChain: ['gemini-2.5-flash'],
  });
  const input = (): SubmitInteractionInput => {
    const operationId = randomUUID();
    return { operationId, workflowId: `wf-${operationId}`, tenantId, operationType: 'generate-report', model: 'gemini-2.5-flash', request: { prompt: 'a report' } };
  };
  const ledger = async (operationId: string) =>
    (await pool.query('SELECT submit_attempts, status, interaction_id FROM gemini_interactions WHERE operation_id = $1', [operationId])).rows;

  it('holds the step, claims in one transaction and stores in one: 12 statements with the lock and its release (16 before)', async () => {
    const call = input();
    statements.reset();
    const result = await new MockActivityEnvironment({ attempt: 1 }).run(submit(), call) as SubmitInteractionResult;
    // lock; claim: BEGIN, the stored id, the spend reservation, the ledger's count, COMMIT; store: BEGIN, the effect row, the ledger's id, the attempt row, COMMIT; unlock
    expect(statements.statements.filter((s) => s === 'BEGIN')).toHaveLength(2);
    expect(statements.statements).toHaveLength(12);
    expect(await ledger(call.operationId)).toEqual([{ submit_attempts: 1, status: 'submitted', interaction_id: result.interactionId }]);

    const again = await new MockActivityEnvironment({ attempt: 2 }).run(submit(), call);
    expect(again).toEqual({ interactionId: result.interactionId, reused: true });
    expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
  });

  it('takes back the ledger’s count of a submission Gemini refused, and makes the refusal final', async () => {
    await fake.script([{ kind: 'error', status: 400 }], 'gemini-2.5-flash');
    const call = input();
    const error = await new MockActivityEnvironment({ attempt: 1 }).run(submit(), call).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toMatchObject({ type: FailureType.GeminiRejected, nonRetryable: true });
    expect(await ledger(call.operationId)).toEqual([{ submit_attempts: 0, status: 'reserved', interaction_id: null }]);
  });

  describe('pollInteraction finishing a completed report in the same activity (finishOnSuccess)', () => {
    const polling = (completeOperation: InteractionActivityDeps['completeOperation']) => createPollInteraction({
      pool,
      gemini: createGeminiClient({ apiKey: 'test-key', baseUrl: gemini.url, timeoutMs: 10_000 }),
      geminiMetrics: createGeminiMetrics(new Registry()),
      modelChain: ['gemini-2.5-flash'],
      completeOperation,
    });
    /** A submitted interaction that Gemini has completed, and the poll input that reads it. */
    const completedReport = async (options: { finishOnSuccess: boolean }): Promise<PollInteractionInput> => {
      await fake.interactions({ hold: true });
      const call = input();
      const { interactionId } = await new MockActivityEnvironment({ attempt: 1 }).run(submit(), call) as SubmitInteractionResult;
      await fake.complete(interactionId);
      return {
        operationId: call.operationId, workflowId: call.workflowId, tenantId, operationType: 'generate-report', interactionId, trigger: 'poll',
        ...(options.finishOnSuccess ? { finishOnSuccess: { idempotencyKey: `key-${randomUUID()}`, submittedModel: 'gemini-2.5-flash' } } : {}),
      };
    };
    const billsAndEvents = async (operationId: string) => ({
      bills: (await pool.query('SELECT model, total_tokens FROM usage_ledger WHERE operation_id = $1', [operationId])).rows,
      events: (await pool.query('SELECT event_type, payload FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows,
    });

    it('writes the result, one bill and one event after the end is recorded, and a repeated poll does neither again', async () => {
      const poll = await completedReport({ finishOnSuccess: true });
      const activityFn = polling(createCompleteOperation({ pool }));
      const first = await new MockActivityEnvironment({ attempt: 1 }).run(activityFn, poll) as PollInteractionResult;
      expect(first).toMatchObject({ status: 'completed', finished: true, attempts: [expect.objectContaining({ outcome: 'succeeded' })] });
      // A worker that died after the finish's COMMIT polls again: the stored finish, nothing written twice.
      const again = await new MockActivityEnvironment({ attempt: 2 }).run(activityFn, poll) as PollInteractionResult;
      expect(again).toEqual(first);
      const { bills, events } = await billsAndEvents(poll.operationId);
      expect(bills).toEqual([{ model: 'gemini-2.5-flash', total_tokens: first.usage!.totalTokens }]);
      expect(events.map((e) => e.event_type)).toEqual(['operation.succeeded']);
      expect(JSON.stringify(events[0].payload)).toContain(poll.interactionId);
      expect((await fake.calls({ paid: true })).map((c) => c.operation)).toEqual(['interactions.create']);
    });

    it('still returns the completed state, unfinished, when finishing fails: the workflow finishes it', async () => {
      const poll = await completedReport({ finishOnSuccess: true });
      const result = await new MockActivityEnvironment({ attempt: 1 }).run(polling(async () => {
        throw new Error('connection terminated unexpectedly');
      }), poll) as PollInteractionResult;
      expect(result).toMatchObject({ status: 'completed', attempts: [expect.objectContaining({ outcome: 'succeeded' })] });
      expect(result.text).toContain('[offline model]');
      expect(result.finished).toBeUndefined();
      expect(await billsAndEvents(poll.operationId)).toEqual({ bills: [], events: [] });
    });

    it('leaves finishing to the workflow for runs that do not ask (recorded before the poll finished)', async () => {
      const poll = await completedReport({ finishOnSuccess: false });
      let finished = 0;
      const result = await new MockActivityEnvironment({ attempt: 1 }).run(polling(async () => void finished++), poll) as PollInteractionResult;
      expect(result).toMatchObject({ status: 'completed' });
      expect(result.finished).toBeUndefined();
      expect(finished).toBe(0);
    });

    it('leaves finishing to the workflow when the poll was cancelled after it read the end (POST …/cancel): the state only, nothing billed', async () => {
      const poll = await completedReport({ finishOnSuccess: true });
      // Holds the ledger row, so the poll stops between reading the end and finishing.
      const holder = await pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT 1 FROM gemini_interactions WHERE interaction_id = $1 FOR UPDATE', [poll.interactionId]);
        let finished = 0;
        const env = new MockActivityEnvironment({ attempt: 1, heartbeatTimeoutMs: 3_000 });
        const running = env.run(polling(async () => void finished++), poll) as Promise<PollInteractionResult>;
        await eventually('the poll to wait on the ledger row', async () =>
          Number((await pool.query(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE gemini_interactions%'`)).rows[0].count) === 1);
        env.cancel();
        await holder.query('ROLLBACK');
        const result = await running;
        expect(result).toMatchObject({ status: 'completed' });
        expect(result.finished).toBeUndefined();
        expect(finished).toBe(0);
      } finally {
        holder.release();
      }
      expect(await billsAndEvents(poll.operationId)).toEqual({ bills: [], events: [] });
    });

    it('does not finish a report still running: the state only', async () => {
      await fake.interactions({ hold: true });
      const call = input();
      const { interactionId } = await new MockActivityEnvironment({ attempt: 1 }).run(submit(), call) as SubmitInteractionResult;
      let finished = 0;
      const poll: PollInteractionInput = {
        operationId: call.operationId, workflowId: call.workflowId, tenantId, operationType: 'generate-report', interactionId, trigger: 'poll',
        finishOnSuccess: { idempotencyKey: `key-${randomUUID()}`, submittedModel: 'gemini-2.5-flash' },
      };
      const result = await new MockActivityEnvironment({ attempt: 1 }).run(polling(async () => void finished++), poll) as PollInteractionResult;
      expect(result).toMatchObject({ terminal: false });
      expect(result.finished).toBeUndefined();
      expect(finished).toBe(0);
    });
  });
});
