import { hash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { withTransaction } from '../db/transaction';

/**
 * API keys are stored as SHA-256 digests. Keys are long random strings, so a
 * fast hash is enough (no dictionary to guess from) and lookup stays one index probe.
 */
export function hashApiKey(apiKey: string): Buffer {
  // One-shot crypto.hash (UTF-8 for strings): hashed on every request by the auth cache's lookup.
  return hash('sha256', apiKey, 'buffer');
}

/** A new key: `of_` + 32 random bytes, base64url. */
export function generateApiKey(): string {
  return `of_${randomBytes(32).toString('base64url')}`;
}

/** The tenant an active key belongs to, or undefined. */
export async function findTenantByApiKey(db: Pick<pg.Pool, 'query'>, apiKey: string): Promise<string | undefined> {
  const { rows } = await db.query<{ tenant_id: string }>(
    'SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
    [hashApiKey(apiKey)],
  );
  return rows[0]?.tenant_id;
}

/** Provisions `tenant:apikey` pairs (ONCEFLOW_TENANTS); safe to run at every start. */
export async function provisionTenants(pool: pg.Pool, tenants: readonly { tenantId: string; apiKey: string }[]): Promise<void> {
  for (const { tenantId, apiKey } of tenants) {
    await withTransaction(pool, async (tx) => {
      await tx.query('INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING', [tenantId]);
      // A key is bound to one tenant for good: re-provisioning the same key under another tenant is refused.
      const { rows } = await tx.query<{ tenant_id: string }>(
        `INSERT INTO api_keys (key_hash, tenant_id, label) VALUES ($1, $2, 'ONCEFLOW_TENANTS')
         ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL WHERE api_keys.tenant_id = EXCLUDED.tenant_id
         RETURNING tenant_id`,
        [hashApiKey(apiKey), tenantId],
      );
      if (rows.length === 0) throw new Error(`ONCEFLOW_TENANTS: the key given for ${tenantId} already belongs to another tenant`);
    });
  }
}

/** Creates a tenant with a fresh key; returns the key (shown once, stored hashed). */
export async function createTenant(pool: pg.Pool, tenantId: string): Promise<{ tenantId: string; apiKey: string }> {
  const apiKey = generateApiKey();
  await withTransaction(pool, async (tx) => {
    await tx.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
    await tx.query("INSERT INTO api_keys (key_hash, tenant_id, label) VALUES ($1, $2, 'created')", [hashApiKey(apiKey), tenantId]);
  });
  return { tenantId, apiKey };
}

/** Whether the tenant exists (operator tools act for a tenant without its key). */
export async function tenantExists(db: Pick<pg.Pool, 'query'>, tenantId: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM tenants WHERE tenant_id = $1', [tenantId]);
  return (rowCount ?? 0) > 0;
}

/** Revokes every active key of the tenant and issues a new one, atomically. Undefined if the tenant is unknown. */
export async function rotateApiKey(pool: pg.Pool, tenantId: string): Promise<{ tenantId: string; apiKey: string } | undefined> {
  const apiKey = generateApiKey();
  return withTransaction(pool, async (tx) => {
    const { rowCount } = await tx.query('SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE', [tenantId]);
    if (!rowCount) return undefined;
    await tx.query('UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL', [tenantId]);
    await tx.query("INSERT INTO api_keys (key_hash, tenant_id, label) VALUES ($1, $2, 'rotated')", [hashApiKey(apiKey), tenantId]);
    return { tenantId, apiKey };
  });
}
