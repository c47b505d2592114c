import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Pool } from '../../src/db/pool';
import { PostgresIdempotencyStore, type Reservation } from '../../src/idempotency/store';
import { createTestPool, createTestTenant } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { until } from '../helpers/until';

describe('PostgresIdempotencyStore.findOrReserve', () => {
  let pool: Pool;
  let store: PostgresIdempotencyStore;
  let tenantId: string;

  beforeAll(async () => {
    pool = createTestPool();
    store = new PostgresIdempotencyStore(pool);
    tenantId = await createTestTenant(pool, 'store');
  });
  afterAll(() => pool.end());

  const NOW_MS = 1_796_000_000_000;
  function reservation(key: string, overrides: Partial<Reservation> = {}): Reservation {
    return {
      tenantId,
      operationType: 'generate-content',
      idempotencyKey: key,
      operationId: randomUUID(),
      fingerprint: 'f'.repeat(64),
      workflowId: `wf-${key}`,
      input: { prompt: 'hello', temperature: 0.5 },
      nowMs: NOW_MS,
      expiresAtMs: NOW_MS + 3_600_000,
      ...overrides,
    };
  }

  async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: testInfra().databaseUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  /** Fails instead of hanging when `promise` is blocked (e.g. on a row lock). */
  function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms))),
    ]).finally(() => clearTimeout(timer));
  }

  it('reserves a new key with its input, and hands a repeat the same operation without taking the key again', async () => {
    const key = randomUUID();
    const first = await store.findOrReserve(reservation(key));
    expect(first).toMatchObject({ reserved: true, record: { idempotencyKey: key, status: 'reserved', input: { prompt: 'hello', temperature: 0.5 } } });

    const repeat = await store.findOrReserve(reservation(key, { operationId: randomUUID(), nowMs: NOW_MS + 5_000 }));
    expect(repeat).toMatchObject({ reserved: false, record: { operationId: first!.record.operationId, firstSeenMs: NOW_MS } });

    const { rows } = await pool.query('SELECT operation_id, input FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenantId, key]);
    expect(rows).toEqual([{ operation_id: first!.record.operationId, input: { prompt: 'hello', temperature: 0.5 } }]);
  });

  it('answers a repeat while another transaction holds the row locked: the repeat path writes and locks nothing', async () => {
    const key = randomUUID();
    await store.findOrReserve(reservation(key));
    await withClient(async (holder) => {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM operations WHERE tenant_id = $1 AND idempotency_key = $2 FOR UPDATE', [tenantId, key]);
      try {
        const repeat = await within(5_000, store.findOrReserve(reservation(key)), 'a repeat of a locked row');
        expect(repeat?.reserved).toBe(false);
      } finally {
        await holder.query('ROLLBACK');
      }
    });
  });

  it('loses a race to a first request that commits after its snapshot: no second row, and find reads the winner', async () => {
    const key = randomUUID();
    await withClient(async (winner) => {
      await winner.query('BEGIN');
      const won = await new PostgresIdempotencyStore(winner).findOrReserve(reservation(key));
      expect(won?.reserved).toBe(true);
      // The loser's INSERT waits on the winner's uncommitted key.
      const losing = store.findOrReserve(reservation(key));
      await until(
        async () => (await pool.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%taken AS%'")).rowCount! > 0,
        'the losing INSERT waits on the winner',
        5_000,
      );
      await winner.query('COMMIT');
      expect(await within(5_000, losing, 'the losing request')).toBeUndefined();
      expect(await store.find({ tenantId, operationType: 'generate-content', idempotencyKey: key })).toMatchObject({ operationId: won!.record.operationId });
    });
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenantId, key]);
    expect(rows[0].n).toBe(1);
  });

  it('returns an expired row as found and leaves taking it over to reserve', async () => {
    const key = randomUUID();
    const old = await store.findOrReserve(reservation(key, { nowMs: NOW_MS - 7_200_000, expiresAtMs: NOW_MS - 3_600_000 }));
    const found = await store.findOrReserve(reservation(key));
    expect(found).toMatchObject({ reserved: false, record: { operationId: old!.record.operationId } });

    const takeover = await store.reserve(reservation(key));
    expect(takeover.reserved).toBe(true);
    expect(takeover.record.operationId).not.toBe(old!.record.operationId);
  });
});

