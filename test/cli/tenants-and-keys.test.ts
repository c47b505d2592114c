import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import { findTenantByApiKey } from '../../src/tenants/api-keys';
import { createTestPool, createTestTenant } from '../helpers/db';
import { cliEnv, expectExit, parseJson, runCli } from './run-cli';

describe('onceflow tenants and keys (subprocess)', () => {
  let pool: Pool;
  beforeAll(() => {
    pool = createTestPool();
  });
  afterAll(() => pool.end());

  it('creates a tenant whose printed key authenticates, and rotation revokes the old key', async () => {
    const tenantId = `cli-${randomUUID().slice(0, 8)}`;
    const created = await runCli(['tenants', 'create', tenantId, '--json']);
    expectExit(created, 0);
    const { apiKey } = parseJson(created);
    expect(await findTenantByApiKey(pool, apiKey)).toBe(tenantId);

    const rotated = await runCli(['tenants', 'rotate-key', tenantId]);
    expect(rotated.code).toBe(0);
    const newKey = /api key: (\S+)/.exec(rotated.stdout)?.[1];
    expect(newKey).toBeDefined();
    expect(await findTenantByApiKey(pool, apiKey)).toBeUndefined();
    expect(await findTenantByApiKey(pool, newKey!)).toBe(tenantId);

    const listed = parseJson(await runCli(['tenants', 'list', '--json']));
    expect(listed).toContainEqual(expect.objectContaining({ tenantId, activeKeys: 1, operations: 0 }));
  });

  it('exits 1 for an existing tenant, 3 for rotating an unknown one, 2 for a malformed id', async () => {
    const tenantId = await createTestTenant(pool, 'cli');
    const duplicate = await runCli(['tenants', 'create', tenantId]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/already exists/);
    const unknown = await runCli(['tenants', 'rotate-key', `nobody-${randomUUID().slice(0, 8)}`]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^onceflow: no tenant nobody-/);
    const malformed = await runCli(['tenants', 'create', 'bad id!']);
    expect(malformed.code).toBe(2);
  });

  it('purges only expired finished operations and keeps running and live ones', async () => {
    const tenantId = await createTestTenant(pool, 'purge');
    const insert = (key: string, status: string, expiresSql: string) =>
      pool.query(
        `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, status, input, first_seen_ms, expires_at)
         VALUES ($1, 'generate-content', $2, $3, 'f', $4, $5, '{}', 0, ${expiresSql})`,
        [tenantId, key, randomUUID(), `wf-${key}`, status],
      );
    await insert('expired-done', 'succeeded', "now() - interval '1 hour'");
    await insert('expired-failed', 'failed', "now() - interval '1 minute'");
    await insert('expired-running', 'running', "now() - interval '1 hour'");
    await insert('live-done', 'succeeded', "now() + interval '1 hour'");
    const remaining = async () =>
      (await pool.query<{ idempotency_key: string }>('SELECT idempotency_key FROM operations WHERE tenant_id = $1 ORDER BY 1', [tenantId])).rows.map((r) => r.idempotency_key);

    const dryRun = await runCli(['keys', 'purge', '--tenant', tenantId, '--dry-run', '--json']);
    expectExit(dryRun, 0);
    expect(parseJson(dryRun)).toEqual({ dryRun: true, purged: 0, expiredFinished: 2, expiredStillRunning: 1 });
    expect(await remaining()).toHaveLength(4);

    const purge = await runCli(['keys', 'purge', '--tenant', tenantId, '--batch-size', '1']);
    expect(purge.code).toBe(0);
    expect(purge.stdout).toMatch(/purged 2 expired finished operations/);
    expect(purge.stdout).toMatch(/kept 1 expired operation that still runs/);
    expect(await remaining()).toEqual(['expired-running', 'live-done']);
  });

  it('says DATABASE_URL is missing in one line and exits 2', async () => {
    const run = await runCli(['ops', 'list'], cliEnv({ DATABASE_URL: undefined }));
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/DATABASE_URL is not set/);
  });

  it('runs through the package bin (bin/onceflow.js) and documents its exit codes in --help', async () => {
    const { execFile } = await import('node:child_process');
    const run = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(process.execPath, ['bin/onceflow.js', '--help'], { cwd: `${__dirname}/../..`, env: cliEnv() }, (error, stdout) =>
        resolve({ code: error ? Number(error.code) : 0, stdout }),
      ),
    );
    expect(run.code).toBe(0);
    for (const command of ['start', 'migrate', 'ops', 'keys', 'tenants', 'outbox', 'doctor']) expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(run.stdout).toMatch(/Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 not found, 4 timed out/);
  });

  it('exits 2 for usage errors: unknown command, bad option value, bad configuration', async () => {
    expect((await runCli(['nonsense'])).code).toBe(2);
    expect((await runCli(['ops', 'list', '--limit', 'many'])).code).toBe(2);
    expect((await runCli(['ops', 'list', '--status', 'done'])).code).toBe(2);
    const badConfig = await runCli(['ops', 'list'], cliEnv({ DATABASE_POOL_SIZE: 'lots' }));
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toMatch(/invalid configuration: DATABASE_POOL_SIZE/);
  });
});
