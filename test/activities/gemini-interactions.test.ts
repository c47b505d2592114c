import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { Registry } from 'prom-client';
import { createSubmitInteraction, type SubmitInteractionInput, type SubmitInteractionResult } from '../../activities/gemini-interactions';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import type { Pool } from '../../src/db/pool';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { FailureType } from '../../workflows/failure-types';
import { createTestPool, createTestTenant } from '../helpers/db';
import { QuietMockActivityEnvironment as MockActivityEnvironment } from '../helpers/mock-activity';
import { recordStatements } from '../helpers/statements';
import { FakeGeminiControl } from '../fakes/gemini';

/**
 * submitInteraction (generate-report's paid call) in a MockActivityEnvironment:
 * the guard holding the step, the submission ledger, on real PostgreSQL
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
});
