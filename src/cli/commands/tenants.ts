/** `onceflow tenants create|rotate-key|list`: provisioning for operators. New keys are printed once; only their hashes are stored. */
import { Command, InvalidArgumentError } from 'commander';
import { createTenant, rotateApiKey } from '../../tenants/api-keys';
import { PostgresOperationsRepository } from '../../operations/repository';
import { runCommand, withJson, withPool } from '../context';
import { CliError, ExitCode } from '../errors';

function parseTenantId(value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new InvalidArgumentError('a tenant id is 1 to 64 characters of A-Z a-z 0-9 _ . -');
  return value;
}

export function tenantsCommand(): Command {
  const tenants = new Command('tenants').description('create tenants and rotate their API keys');

  withJson(
    tenants
      .command('create')
      .description('create a tenant with a fresh API key (printed once)')
      .argument('<tenant>', 'tenant id: 1-64 of A-Z a-z 0-9 _ . -', parseTenantId),
  ).action((tenantId: string, options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const created = await createTenant(pool, tenantId).catch((error: { code?: string }) => {
          if (error?.code === '23505') throw new CliError(`tenant ${tenantId} already exists — use \`onceflow tenants rotate-key ${tenantId}\` for a new key`, ExitCode.Failure);
          throw error;
        });
        if (context.json) return context.out.json(created);
        context.out.line(`created tenant ${created.tenantId}`);
        context.out.line(`api key: ${created.apiKey}`);
        context.out.line('(shown once; only its hash is stored)');
      }),
    ),
  );

  withJson(
    tenants
      .command('rotate-key')
      .description('revoke every key of a tenant and issue a new one (exit 3 if the tenant is unknown)')
      .argument('<tenant>', 'tenant id', parseTenantId),
  ).action((tenantId: string, options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const rotated = await rotateApiKey(pool, tenantId);
        if (!rotated) throw new CliError(`no tenant ${tenantId}`, ExitCode.NotFound);
        if (context.json) return context.out.json(rotated);
        context.out.line(`rotated the key of ${rotated.tenantId}; the previous keys are revoked (API processes may accept them up to 30 s more from their cache)`);
        context.out.line(`api key: ${rotated.apiKey}`);
      }),
    ),
  );

  withJson(tenants.command('list').description('list tenants with their active keys and live operations')).action((options: { json?: boolean }) =>
    runCommand(options, (context) =>
      withPool(context.config, async (pool) => {
        const { rows: tenantRows } = await pool.query<{ tenantId: string; createdAt: Date; activeKeys: number }>(
          `SELECT t.tenant_id AS "tenantId", t.created_at AS "createdAt",
                  (SELECT count(*)::int FROM api_keys k WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS "activeKeys"
             FROM tenants t ORDER BY t.tenant_id`,
        );
        const operationCounts = await new PostgresOperationsRepository(pool).countByTenant();
        const rows = tenantRows.map((row) => ({ ...row, operations: operationCounts.get(row.tenantId) ?? 0 }));
        if (context.json) return context.out.json(rows);
        context.out.table(rows, [
          { key: 'tenantId', header: 'TENANT' },
          { key: 'createdAt', header: 'CREATED' },
          { key: 'activeKeys', header: 'ACTIVE KEYS' },
          { key: 'operations', header: 'OPERATIONS' },
        ]);
      }),
    ),
  );

  return tenants;
}
