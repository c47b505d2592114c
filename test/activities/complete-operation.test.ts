import { randomUUID } from 'node:crypto';
import { createCompleteOperation } from '../../activities/complete-operation';
import type { Pool } from '../../src/db/pool';
import { createTestPool, createTestTenant } from '../helpers/db';
import { recordStatements } from '../helpers/statements';

describe('completeOperation', () => {
  let pool: Pool;
  let tenantId: string;
  beforeAll(async () => {
    pool = createTestPool();
    tenantId = await createTestTenant(pool);
  });
  afterAll(() => pool.end());

  async function reserve(): Promise<string> {
    const operationId = randomUUID();
    await pool.query(
      `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id,
                               status, input, first_seen_ms, expires_at)
       VALUES ($1, 'generate-content', $2, $3, 'fp', $4, 'running', '{}', 1763805600000, now() + interval '1 day')`,
      [tenantId, `key-${operationId}`, operationId, `wf-${operationId}`],
    );
    return operationId;
  }

  it('bills once and publishes one event when the activity runs three times', async () => {
    const operationId = await reserve();
    const complete = createCompleteOperation({ pool });
    const input = {
      operationId,
      tenantId,
      operationType: 'generate-content',
      idempotencyKey: `key-${operationId}`,
      workflowId: `wf-${operationId}`,
      outcome: 'succeeded' as const,
      result: { text: 'hello', model: 'gemini-2.5-flash', usage: { promptTokens: 10, outputTokens: 20, totalTokens: 30 }, attempts: [] },
      usage: { model: 'gemini-2.5-flash', promptTokens: 10, outputTokens: 20, totalTokens: 30 },
    };
    await Promise.all([complete(input), complete(input), complete(input)]);

    const ledger = await pool.query('SELECT total_tokens FROM usage_ledger WHERE operation_id = $1', [operationId]);
    expect(ledger.rows).toEqual([{ total_tokens: 30 }]);
    const events = await pool.query('SELECT event_type FROM outbox_events WHERE aggregate_id = $1', [operationId]);
    expect(events.rows).toEqual([{ event_type: 'operation.succeeded' }]);
    const op = await pool.query('SELECT status, result FROM operations WHERE operation_id = $1', [operationId]);
    expect(op.rows).toEqual([{ status: 'succeeded', result: expect.objectContaining({ text: 'hello' }) }]);
  });

  it('finishes in one transaction of six statements, and a rerun of a finished operation in four', async () => {
    const operationId = await reserve();
    const statements = recordStatements(pool);
    const complete = createCompleteOperation({ pool });
    const input = {
      operationId, tenantId, operationType: 'generate-content', idempotencyKey: `key-${operationId}`, workflowId: `wf-${operationId}`,
      outcome: 'succeeded' as const,
      result: { text: 'hello', model: 'gemini-2.5-flash', usage: { promptTokens: 1, outputTokens: 2, totalTokens: 3 }, attempts: [] },
      usage: { model: 'gemini-2.5-flash', promptTokens: 1, outputTokens: 2, totalTokens: 3 },
    };
    statements.reset();
    const first = await complete(input);
    // BEGIN, the effect row, the operation row (+ NOTIFY), the bill, the event (+ deliveries, NOTIFY), COMMIT
    expect(statements.statements).toHaveLength(6);
    expect([statements.statements[0], statements.statements[5]]).toEqual(['BEGIN', 'COMMIT']);
    statements.reset();
    // BEGIN, the effect row's insert that finds the stored one, its read, COMMIT
    expect(await complete(input)).toEqual(first);
    expect(statements.statements).toHaveLength(4);
    expect((await pool.query('SELECT count(*)::int AS n FROM outbox_events WHERE aggregate_id = $1', [operationId])).rows[0].n).toBe(1);
  });

  it('releases the key only for a retryable failure of a type that allows it', async () => {
    const complete = createCompleteOperation({ pool });
    const base = { tenantId, operationType: 'generate-content', outcome: 'failed' as const };
    const exhausted = await reserve();
    await complete({
      ...base, operationId: exhausted, idempotencyKey: `key-${exhausted}`, workflowId: `wf-${exhausted}`,
      error: { type: 'provider-failure', detail: 'every model failed', retryable: true },
    });
    const rejected = await reserve();
    await complete({
      ...base, operationId: rejected, idempotencyKey: `key-${rejected}`, workflowId: `wf-${rejected}`,
      error: { type: 'prompt-rejected', detail: 'safety', retryable: false },
    });
    const { rows } = await pool.query(
      `SELECT operation_id, released, error->>'type' AS type, error_status FROM operations WHERE operation_id = ANY($1) ORDER BY error->>'type' DESC`,
      [[exhausted, rejected]],
    );
    // The HTTP status is the problem table's to decide (src/http/problems.ts), no longer stored.
    expect(rows).toEqual([
      { operation_id: exhausted, released: true, type: 'provider-failure', error_status: null },
      { operation_id: rejected, released: false, type: 'prompt-rejected', error_status: null },
    ]);
  });

  it('refuses, for good and before writing anything, a succeeded result that breaks its type’s resultSchema', async () => {
    const operationId = await reserve();
    const complete = createCompleteOperation({ pool });
    const refused = complete({
      operationId, tenantId, operationType: 'generate-content', idempotencyKey: `key-${operationId}`, workflowId: `wf-${operationId}`,
      outcome: 'succeeded', result: { text: 'hello', usage: { promptTokens: '10' } },
      usage: { model: 'gemini-2.5-flash', promptTokens: 10, outputTokens: 20, totalTokens: 30 },
    });
    await expect(refused).rejects.toMatchObject({ type: 'InvalidState', nonRetryable: true, message: expect.stringMatching(/model: .*usage\.promptTokens: /) });
    const count = async (sql: string) => Number((await pool.query(sql, [operationId])).rows[0].n);
    expect(await count('SELECT count(*) AS n FROM usage_ledger WHERE operation_id = $1')).toBe(0);
    expect(await count('SELECT count(*) AS n FROM outbox_events WHERE aggregate_id = $1')).toBe(0);
    expect(await count("SELECT count(*) AS n FROM operations WHERE operation_id = $1 AND status = 'running' AND result IS NULL")).toBe(1);
  });
});
