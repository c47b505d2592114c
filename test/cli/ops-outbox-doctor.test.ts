import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { OnceflowClient } from '../../src/client';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { startOfflineGeminiServer, type OfflineGeminiServer } from '../../dev/gemini-offline/server';
import { createApiTenant, startTestApi, type TestApi } from '../helpers/api';
import { createTestTenant } from '../helpers/db';
import { testInfra } from '../helpers/infra';
import { startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { cliEnv, expectExit, parseJson, runCli, startCli } from './run-cli';
import { startTestStack } from '../helpers/stack';

describe('onceflow ops, outbox and doctor (subprocess)', () => {
  let pool: Pool;
  let temporal: Client;
  let worker: TestWorker;
  let liveApi: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  const cleanups: (() => Promise<unknown>)[] = [];

  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, temporal, worker, api: liveApi, close } = await startTestStack({ worker: {}, api: {} }));
    tenant = await createApiTenant(pool, 'cli-ops');
  });
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await close();
  });

  it('lists, filters and shows operations created through the API', async () => {
    const idleApi = await startTestApi({ pool, temporal, taskQueue: uniqueTaskQueue('cli-idle') });
    cleanups.push(() => idleApi.close());
    const done = await new OnceflowClient({ baseUrl: liveApi.baseUrl, apiKey: tenant.apiKey }).operations.generateContent({ prompt: 'done' }, { wait: 20 });
    const running = await new OnceflowClient({ baseUrl: idleApi.baseUrl, apiKey: tenant.apiKey }).operations.generateContent({ prompt: 'stays running' });

    const all = await runCli(['ops', 'list', '--tenant', tenant.tenantId, '--json']);
    expectExit(all, 0);
    expect(parseJson(all).map((r: any) => r.idempotencyKey).sort()).toEqual([done.idempotencyKey, running.idempotencyKey].sort());

    const onlyRunning = parseJson(await runCli(['ops', 'list', '--tenant', tenant.tenantId, '--status', 'running', '--json']));
    expect(onlyRunning.map((r: any) => r.idempotencyKey)).toEqual([running.idempotencyKey]);

    const newer = parseJson(await runCli(['ops', 'list', '--tenant', tenant.tenantId, '--created-after', done.operation.createdAt, '--json']));
    expect(newer.map((r: any) => r.idempotencyKey)).toEqual([running.idempotencyKey]);
    const older = parseJson(await runCli(['ops', 'list', '--tenant', tenant.tenantId, '--created-before', running.operation.createdAt, '--json']));
    expect(older.map((r: any) => r.idempotencyKey)).toEqual([done.idempotencyKey]);
    expect((await runCli(['ops', 'list', '--created-after', 'yesterday'])).code).not.toBe(0);

    const table = await runCli(['ops', 'list', '--tenant', tenant.tenantId, '--type', 'generate-content']);
    expectExit(table, 0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TENANT\s+TYPE\s+KEY\s+STATUS\s+CREATED\s+DURATION\s+EXPIRES\s+STEPS\s+WORKFLOW ID$/);
    expect(lines).toHaveLength(3);
    expect(table.stdout).toContain(done.idempotencyKey);

    const shown = await runCli(['ops', 'get', done.idempotencyKey, '--json']);
    expectExit(shown, 0);
    expect(parseJson(shown)).toMatchObject({ tenantId: tenant.tenantId, status: 'succeeded', workflowId: done.operation.workflowId, steps: expect.arrayContaining(['complete']) });

    const human = await runCli(['ops', 'get', done.idempotencyKey, '--tenant', tenant.tenantId]);
    expect(human.stdout).toMatch(/^status:\s+succeeded$/m);
    expect(human.stdout).toMatch(/^temporal ui:\s+http/m);

    const missing = await runCli(['ops', 'get', `missing-${randomUUID()}`]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^onceflow: no operation has the key/);
  });

  it('watches a running operation with a progress line until it succeeds (exit 0)', async () => {
    const taskQueue = uniqueTaskQueue('cli-watch');
    const api = await startTestApi({ pool, temporal, taskQueue });
    cleanups.push(() => api.close());
    const started = await new OnceflowClient({ baseUrl: api.baseUrl, apiKey: tenant.apiKey }).operations.generateContent({ prompt: 'watch me' });

    const watch = startCli(['ops', 'watch', started.idempotencyKey, '--tenant', tenant.tenantId, '--interval', '200']);
    // It reports the operation running before any worker exists …
    for (let i = 0; i < 200 && !/: running /.test(watch.stdout()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(watch.stdout()).toMatch(new RegExp(`${tenant.tenantId}/generate-content/${started.idempotencyKey}: running `));
    // … and follows it to the end once one does.
    const late = await startTestWorker({ pool, taskQueue });
    cleanups.push(() => late.stop());
    const run = await watch.done;
    expectExit(run, 0);
    expect(run.stdout).toMatch(/: succeeded \S+ · \d+ steps? done \(last: complete\)/);
  });

  it('exits 4 when a watched operation outlasts --timeout, and 1 when it failed', async () => {
    const tenantId = await createTestTenant(pool, 'cli-watch');
    const insert = (key: string, status: string, error: unknown) =>
      pool.query(
        `INSERT INTO operations (tenant_id, operation_type, idempotency_key, operation_id, fingerprint, workflow_id, status, input, error, first_seen_ms, expires_at, completed_at)
         VALUES ($1, 'generate-content', $2, $3, 'f', $4, $5, '{}', $6, 0, now() + interval '1 hour', CASE WHEN $5 = 'failed' THEN now() END)`,
        [tenantId, key, randomUUID(), `wf-${key}`, status, error === null ? null : JSON.stringify(error)],
      );
    await insert('stuck', 'running', null);
    await insert('broken', 'failed', { type: 'prompt-rejected', detail: 'blocked by safety' });

    const timedOut = await runCli(['ops', 'watch', 'stuck', '--tenant', tenantId, '--timeout', '1', '--interval', '200']);
    expect(timedOut.code).toBe(4);
    expect(timedOut.stderr).toMatch(/still running after 1s/);

    const failed = await runCli(['ops', 'watch', 'broken', '--tenant', tenantId]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/failed: .*prompt-rejected/);
  });

  it('lists dead letters and replays them, refusing an unfiltered replay', async () => {
    // Relays started by other test files share this database and claim every
    // due delivery. So the seeded subscription is one they can really serve: a
    // secret sealed with the key they use and a subscriber that answers 200. A
    // stray relay can then only deliver the replayed row, never dead-letter it
    // again, and every assertion below holds whether or not one got to it.
    const subscriber = createServer((_request, response) => response.writeHead(200).end());
    await new Promise<void>((resolve) => subscriber.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => subscriber.close(resolve)));
    const subscriberPort = (subscriber.address() as AddressInfo).port;

    const tenantId = await createTestTenant(pool, 'cli-outbox');
    const subscriptionId = randomUUID();
    const eventId = `evt-${randomUUID()}`;
    const notDueEventId = `evt-${randomUUID()}`;
    await pool.query(
      `INSERT INTO subscriptions (subscription_id, tenant_id, url, secret_sealed, event_types) VALUES ($1, $2, $3, $4, '{operation.succeeded}')`,
      [subscriptionId, tenantId, `http://127.0.0.1:${subscriberPort}/hook`, secretBoxFromConfig({}).seal(`whsec_${randomBytes(24).toString('base64')}`)],
    );
    const seed = async (id: string, status: string, nextAttempt: string, attempts: number, lastError: string | null): Promise<void> => {
      const { rows } = await pool.query<{ seq: number }>(
        `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload) VALUES ($1, $2, $1, 'operation.succeeded', '{}') RETURNING seq`,
        [id, tenantId],
      );
      await pool.query(
        `INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq, status, attempts, last_error, next_attempt_at)
         VALUES ($1, $2, $1, $3, $4, $5, $6, now() + $7::interval)`,
        [id, subscriptionId, rows[0]!.seq, status, attempts, lastError, nextAttempt],
      );
    };
    await seed(eventId, 'dead', '0 s', 12, 'ECONNREFUSED');
    // Pending but not due for an hour: no relay touches it, so `outbox pending` must count it.
    await seed(notDueEventId, 'pending', '1 hour', 1, 'HTTP 503');

    const listed = await runCli(['outbox', 'dead-letters', '--tenant', tenantId, '--json']);
    expectExit(listed, 0);
    expect(parseJson(listed)).toEqual([expect.objectContaining({ eventId, subscriptionId, attempts: 12, lastError: 'ECONNREFUSED' })]);
    const table = await runCli(['outbox', 'dead-letters', '--subscription', subscriptionId]);
    expect(table.stdout).toMatch(/^EVENT\s+TYPE\s+TENANT/);
    expect(table.stdout).toContain(eventId);

    expect((await runCli(['outbox', 'replay'])).code).toBe(2);
    expect((await runCli(['outbox', 'replay', '--subscription', 'not-a-uuid'])).code).toBe(2);
    expect((await runCli(['outbox', 'replay', '--event', `evt-${randomUUID()}`])).code).toBe(3);

    const replayed = await runCli(['outbox', 'replay', '--tenant', tenantId, '--json']);
    expectExit(replayed, 0);
    expect(parseJson(replayed)).toEqual({ replayed: 1 });
    const delivery = await pool.query<{ status: string; attempts: number }>('SELECT status, attempts FROM deliveries WHERE event_id = $1', [eventId]);
    // Back in the queue with its attempt budget reset (a relay quicker than this query may already hold or have delivered it).
    expect(['pending', 'delivered']).toContain(delivery.rows[0]!.status);
    expect(delivery.rows[0]!.attempts).toBeLessThanOrEqual(1);
    expect(parseJson(await runCli(['outbox', 'dead-letters', '--tenant', tenantId, '--json']))).toEqual([]);

    const pending = await runCli(['outbox', 'pending', '--json']);
    expectExit(pending, 0);
    expect(parseJson(pending).pending).toBeGreaterThanOrEqual(1);
  });

  describe('doctor', () => {
    let gemini: OfflineGeminiServer;
    beforeAll(async () => {
      gemini = await startOfflineGeminiServer();
    });
    afterAll(() => gemini.close());

    it('passes every check against a healthy system', async () => {
      const run = await runCli(['doctor', '--json'], cliEnv({ GEMINI_BASE_URL: gemini.url, GEMINI_API_KEY: 'test-key', TEMPORAL_TASK_QUEUE: worker.taskQueue }));
      expectExit(run, 0);
      const report = parseJson(run);
      expect(report.ok).toBe(true);
      expect(Object.fromEntries(report.checks.map((c: any) => [c.check, c.status]))).toEqual({
        postgresql: 'ok',
        migrations: 'ok',
        temporal: 'ok',
        'search attributes': 'ok',
        worker: 'ok',
        gemini: 'ok',
      });
    });

    it('names what is broken and how to fix it, then migrate fixes the schema', async () => {
      const database = `doctor_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
      await pool.query(`CREATE DATABASE ${database}`);
      cleanups.push(() => pool.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
      const url = new URL(testInfra().databaseUrl);
      url.pathname = `/${database}`;
      const deadPort = await findFreePort();
      const env = cliEnv({ DATABASE_URL: url.toString(), TEMPORAL_ADDRESS: `127.0.0.1:${deadPort}`, GEMINI_BASE_URL: `http://127.0.0.1:${deadPort}` });

      const broken = await runCli(['doctor'], env);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(/^migrations\s+FAIL\s+\d+ pending: 001_operations\.sql/m);
      expect(broken.stdout).toMatch(/^temporal\s+FAIL\s+cannot reach 127\.0\.0\.1:\d+/m);
      expect(broken.stdout).toMatch(/^search attributes\s+SKIPPED/m);
      expect(broken.stdout).toMatch(/^gemini\s+FAIL\s+cannot reach/m);
      expect(broken.stdout).toMatch(/To fix:\n(.*\n)*\s+migrations: run `onceflow migrate`/);
      expect(broken.stdout).toMatch(/temporal: start the Temporal server .* or fix TEMPORAL_ADDRESS/);

      const migrated = await runCli(['migrate'], env);
      expectExit(migrated, 0);
      expect(migrated.stdout).toMatch(/^applied 001_operations\.sql, 002_outbox\.sql/);
      const after = parseJson(await runCli(['doctor', '--json'], env));
      expect(after.checks.find((c: any) => c.check === 'migrations')).toMatchObject({ status: 'ok' });
    });

    it('reports search attributes missing from a namespace, with the command that registers them', async () => {
      const namespace = `doctor-${randomUUID().slice(0, 8)}`;
      await temporal.connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
      let run = await runCli(['doctor', '--json'], cliEnv({ TEMPORAL_NAMESPACE: namespace, GEMINI_BASE_URL: gemini.url }));
      // A new namespace reaches every frontend cache within seconds; until then describeNamespace says not found.
      for (let i = 0; i < 20 && parseJson(run).checks.find((c: any) => c.check === 'temporal').status !== 'ok'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        run = await runCli(['doctor', '--json'], cliEnv({ TEMPORAL_NAMESPACE: namespace, GEMINI_BASE_URL: gemini.url }));
      }
      expect(run.code).toBe(1);
      const check = parseJson(run).checks.find((c: any) => c.check === 'search attributes');
      expect(check).toMatchObject({ status: 'fail', detail: expect.stringContaining('missing OnceflowTenant') });
      expect(check.fix).toContain(`temporal operator search-attribute create --namespace ${namespace} --name OnceflowTenant --type Keyword`);
    });
  });
});
