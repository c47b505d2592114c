import { createPool, type Pool } from '../../src/db/pool';
import { testInfra } from './infra';

export function createTestPool(): Pool {
  return createPool({ connectionString: testInfra().databaseUrl, max: 5, applicationName: 'onceflow-test' });
}

/** The `total_tokens` of every bill of a tenant's key: one row per succeeded operation, never two. */
export async function billsOf(pool: Pool, tenantId: string, key: string): Promise<{ total_tokens: number }[]> {
  const { rows } = await pool.query<{ total_tokens: number }>(
    `SELECT l.total_tokens FROM usage_ledger l JOIN operations o USING (operation_id)
      WHERE o.tenant_id = $1 AND o.idempotency_key = $2`,
    [tenantId, key],
  );
  return rows;
}

/** The event types the outbox recorded for a tenant's key. */
export async function eventTypesOf(pool: Pool, tenantId: string, key: string): Promise<string[]> {
  const { rows } = await pool.query<{ event_type: string }>(
    `SELECT e.event_type FROM outbox_events e JOIN operations o ON e.aggregate_id = o.operation_id::text
      WHERE o.tenant_id = $1 AND o.idempotency_key = $2`,
    [tenantId, key],
  );
  return rows.map((r) => r.event_type);
}

/** A tenant id no other test uses; created in the tenants table. */
export async function createTestTenant(pool: Pool, prefix = 't'): Promise<string> {
  const tenantId = `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
  await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
  return tenantId;
}

/**
 * Runs `work` while holding a PostgreSQL advisory lock named `name`, across
 * every jest worker. For tests that run a pass over a table all suites share
 * (the outbox prune deletes every tenant's old rows): each asserts what its
 * own pass reported, and a concurrent pass of another suite would have
 * deleted those rows first and reported them itself.
 */
export async function exclusively<T>(pool: Pool, name: string, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [name]);
    return await work();
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [name]).catch(() => undefined);
    client.release();
  }
}

/** The lock of every test that runs an outbox prune pass (see exclusively). */
export const OUTBOX_PRUNE_LOCK = 'onceflow-test-outbox-prune';
