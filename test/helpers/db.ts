import { createPool, type Pool } from '../../src/db/pool';
import { testInfra } from './infra';

export function createTestPool(): Pool {
  return createPool({ connectionString: testInfra().databaseUrl, max: 5, applicationName: 'onceflow-test' });
}

/** A tenant id no other test uses; created in the tenants table. */
export async function createTestTenant(pool: Pool, prefix = 't'): Promise<string> {
  const tenantId = `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
  await pool.query('INSERT INTO tenants (tenant_id) VALUES ($1)', [tenantId]);
  return tenantId;
}
