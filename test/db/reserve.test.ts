/**
 * Taking an idempotency key against real PostgreSQL: one statement takes a new
 * key or replaces an expired or released one; a key that binds is left to its
 * holder; concurrent twins get one winner.
 */
import { randomUUID } from 'node:crypto';
import { PostgresOperationsRepository, type Reservation } from '../../src/operations/repository';
import { createTestPool, createTestTenant } from '../helpers/db';
import { recordStatements } from '../helpers/statements';

const pool = createTestPool();
const statements = recordStatements(pool);
const operations = new PostgresOperationsRepository(pool);
let tenantId: string;

beforeAll(async () => {
  tenantId = await createTestTenant(pool);
});
afterAll(async () => {
  await pool.end();
});

const nowMs = Date.now();
function reservation(key: string, overrides: Partial<Reservation> = {}): Reservation {
  return {
    tenantId, operationType: 'generate-content', idempotencyKey: key, operationId: randomUUID(),
    fingerprint: 'a'.repeat(64), fingerprintVersion: 2, workflowId: `wf-${key}`, input: { prompt: key },
    nowMs, expiresAtMs: nowMs + 3_600_000, ...overrides,
  };
}

test('a new key is taken in one statement; a repeat gets the holder, unchanged', async () => {
  const key = `reserve-${randomUUID()}`;
  statements.reset();
  const first = await operations.reserve(reservation(key));
  expect(first.reserved).toBe(true);
  expect(statements.statements).toHaveLength(1);
  const repeat = await operations.reserve(reservation(key, { fingerprint: 'b'.repeat(64) }));
  expect(repeat).toMatchObject({ reserved: false, record: { operationId: first.record.operationId, fingerprint: 'a'.repeat(64), status: 'reserved' } });
});

test('a failure that released its key is taken over by the next reservation', async () => {
  const key = `reserve-${randomUUID()}`;
  const first = await operations.reserve(reservation(key));
  await pool.query(`UPDATE operations SET status = 'failed', released = true WHERE operation_id = $1`, [first.record.operationId]);
  statements.reset();
  const again = await operations.reserve(reservation(key));
  expect(again.reserved).toBe(true);
  expect(again.record.operationId).not.toBe(first.record.operationId);
  expect(statements.statements).toHaveLength(1);
});

test('an expired key is taken again, remembering the previous run', async () => {
  const key = `reserve-${randomUUID()}`;
  const first = await operations.reserve(reservation(key, { nowMs: nowMs - 7_200_000, expiresAtMs: nowMs - 3_600_000 }));
  await operations.markStarted(first.record.operationId, 'run-1');
  const again = await operations.reserve(reservation(key));
  expect(again.reserved).toBe(true);
  expect(again.record.operationId).not.toBe(first.record.operationId);
  expect(again.record.previousRunId).toBe('run-1');
});

test('twins racing for a new key get one winner, and the losers its row', async () => {
  const key = `reserve-${randomUUID()}`;
  const results = await Promise.all(Array.from({ length: 6 }, () => operations.reserve(reservation(key))));
  const winners = results.filter((result) => result.reserved);
  expect(winners).toHaveLength(1);
  for (const result of results) expect(result.record.operationId).toBe(winners[0]!.record.operationId);
});
