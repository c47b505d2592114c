import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { createTestPool } from '../helpers/db';
import { connectTestClient, startTestWorker, uniqueTaskQueue, type TestWorker } from '../helpers/temporal';
import { until } from '../helpers/until';
import { cliEnv, expectExit, parseJson, runCli } from '../cli/run-cli';
import { drainQueue, metricValue, publishMessages, startConsumerProcess, startTestRabbitmq, type ConsumerProcess, type TestRabbitmq } from './helpers';

jest.setTimeout(300_000);

/** The queue door against a real RabbitMQ (started here), real consumer processes, Temporal and PostgreSQL. */
describe('queue messages', () => {
  let pool: Pool;
  let temporal: Client;
  let rabbit: TestRabbitmq;
  let worker: TestWorker;
  let api: TestApi;
  let tenant: { tenantId: string; apiKey: string };
  const consumers: ConsumerProcess[] = [];
  const taskQueue = uniqueTaskQueue('queue');

  beforeAll(async () => {
    pool = createTestPool();
    temporal = await connectTestClient();
    rabbit = await startTestRabbitmq();
    worker = await startTestWorker({ pool, taskQueue });
    api = await startTestApi({ pool, temporal, taskQueue });
    tenant = await createApiTenant(pool, 'queue');
  });
  afterAll(async () => {
    for (const consumer of consumers) consumer.kill('SIGKILL');
    await api?.close();
    await worker?.stop();
    await rabbit?.stop();
    await temporal?.connection.close();
    await pool?.end();
  });

  const headers = (key?: string) => ({ 'onceflow-tenant': tenant.tenantId, ...(key ? { 'idempotency-key': key } : {}) });
  const operationsByKeys = async (keys: string[]) =>
    (await pool.query<{ idempotency_key: string; status: string; events: string }>(
      `SELECT o.idempotency_key, o.status, (SELECT count(*) FROM outbox_events e WHERE e.aggregate_id = o.operation_id::text) AS events
         FROM operations o WHERE o.tenant_id = $1 AND o.idempotency_key = ANY($2)`,
      [tenant.tenantId, keys],
    )).rows;

  it('starts one operation per key, shares the key space with HTTP, and dead-letters refused messages with their problem', async () => {
    const queue = `ops-${randomUUID()}`;
    const consumer = await startConsumerProcess({ rabbitmqUrl: rabbit.url, taskQueue, queue });
    consumers.push(consumer);
    const key = randomUUID();
    const message = { body: { operationType: 'generate-content', input: { prompt: 'from the queue' } }, headers: headers(key) };
    // The same message twice (a producer retry): one operation.
    await publishMessages(rabbit.url, queue, [message, message]);
    await until(async () => (await operationsByKeys([key]))[0]?.status === 'succeeded', 'the operation to succeed', 120_000);
    await until(async () => (await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue' })) === 2, 'both messages counted');
    expect(await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', outcome: 'new' })).toBe(1);
    // The same key over HTTP replays the queue's operation.
    const overHttp = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key, body: { prompt: 'from the queue' } });
    expect(overHttp.status).toBe(200);
    expect(overHttp.headers.get('idempotent-replayed')).toBe('true');
    // And an HTTP key sent later by message starts nothing new.
    const httpKey = randomUUID();
    expect((await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: httpKey, body: { prompt: 'over http' } })).status).toBe(202);

    await publishMessages(rabbit.url, queue, [
      { body: { operationType: 'generate-content', input: { prompt: 'over http' } }, headers: headers(httpKey) },
      { body: { operationType: 'generate-content', input: { prompt: 'another payload' } }, headers: headers(key) },
      { body: { operationType: 'generate-content', input: { prompt: '' } }, headers: headers(randomUUID()) },
      { body: { operationType: 'generate-content', input: { prompt: 'no key' } }, headers: headers() },
      { body: '{"operationType": "generate-content", "input": {"prompt": 1, "prompt": 2}}', headers: headers(randomUUID()) },
      { body: { operationType: 'generate-content', input: { prompt: 'nobody' } }, headers: { 'onceflow-tenant': 'no-such-tenant', 'idempotency-key': randomUUID() } },
    ]);
    await until(async () => (await metricValue(consumer.metricsUrl, 'onceflow_queue_dead_letters_total')) === 5, 'five dead letters', 60_000);
    // The operator CLI shows them, and leaves them where they are.
    const cli = await runCli(['queue', 'dead-letters', '--json'], cliEnv({ RABBITMQ_URL: rabbit.url, QUEUE_DEAD_LETTER_NAME: `${queue}.dead-letter` }));
    expectExit(cli, 0);
    expect(parseJson(cli).map((letter: { problem: string }) => letter.problem)).toContain('idempotency-key-reused');
    const dead = await drainQueue(rabbit.url, `${queue}.dead-letter`);
    expect(dead).toHaveLength(5);
    const problems = dead.map((letter) => JSON.parse(String(letter.properties.headers!['onceflow-problem'])) as { type: string; status: number });
    expect(problems.map((p) => p.type.replace('https://onceflow.dev/problems/', '')).sort()).toEqual(
      ['idempotency-key-missing', 'idempotency-key-reused', 'invalid-request', 'invalid-request', 'tenant-unknown'].sort(),
    );
    // The original body travels with its problem, so it can be fixed and sent again.
    expect(dead.some((letter) => letter.content.toString().includes('another payload'))).toBe(true);
    expect((await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0].n).toBe(2);
    expect(await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', outcome: 'fingerprint_conflict' })).toBe(1);

    // An operator sends a message from the CLI: it lands in the same key space (a repeat of the first key replays).
    const queueEnv = cliEnv({ RABBITMQ_URL: rabbit.url, QUEUE_NAME: queue });
    const cliKey = randomUUID();
    const sent = await runCli(['queue', 'send', '--tenant', tenant.tenantId, '--type', 'generate-content', '--key', cliKey, '--input', '{"prompt":"from the cli"}', '--json'], queueEnv);
    expectExit(sent, 0);
    expect(parseJson(sent)).toEqual({ queue, tenant: tenant.tenantId, operationType: 'generate-content', idempotencyKey: cliKey });
    await until(async () => (await operationsByKeys([cliKey]))[0]?.status === 'succeeded', 'the CLI message\'s operation to succeed', 120_000);
    const countedBefore = await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue' });
    const replayedBefore = await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', outcome: 'replayed' });
    expectExit(await runCli(['queue', 'send', '--tenant', tenant.tenantId, '--type', 'generate-content', '--key', key, '--input', '{"prompt":"from the queue"}'], queueEnv), 0);
    await until(async () => (await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue' })) === countedBefore + 1, 'the CLI repeat counted');
    expect(await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', outcome: 'replayed' })).toBe(replayedBefore + 1);
    const badInput = await runCli(['queue', 'send', '--tenant', tenant.tenantId, '--type', 'generate-content', '--input', '[1]'], queueEnv);
    expect(badInput.code).not.toBe(0);
    expect(badInput.stderr).toContain('--input must be a JSON object');
    expect((await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [tenant.tenantId])).rows[0].n).toBe(3);

    // A type with key fields: a message without a key gets the key HTTP derives for the same fields (CONTRACT v1.1).
    const draft = { title: `Queue door ${randomUUID()}`, publication: 'onceflow-weekly', prompt: 'draft it' };
    const derivedOverHttp = await postOperation(api.baseUrl, { apiKey: tenant.apiKey, key: null, type: 'draft-content', body: draft });
    expect(derivedOverHttp.status).toBe(202);
    const derivedKey = derivedOverHttp.headers.get('idempotency-key')!;
    expect(derivedKey).toMatch(/^derived:/);
    const before = await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue' });
    await publishMessages(rabbit.url, queue, [{ body: { operationType: 'draft-content', input: { ...draft, metadata: { via: 'queue' } } }, headers: headers() }]);
    await until(async () => (await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue' })) === before + 1, 'the draft message counted');
    expect(await metricValue(consumer.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', operation_type: 'draft-content', outcome: 'new' })).toBe(0);
    expect((await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = $2', [tenant.tenantId, derivedKey])).rows[0].n).toBe(1);
  });

  it('killed between receiving and acknowledging, again and again under load: every message runs once, none is lost, redeliveries are counted', async () => {
    const queue = `load-${randomUUID()}`;
    const keys = Array.from({ length: 120 }, () => randomUUID());
    await publishMessages(rabbit.url, queue, keys.map((key, i) => ({ body: { operationType: 'generate-content', input: { prompt: `message ${i}` } }, headers: headers(key) })));
    const reserved = async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = ANY($2)', [tenant.tenantId, keys])).rows[0]!.n;
    let kills = 0;
    for (let round = 0; round < 4; round++) {
      const consumer = await startConsumerProcess({ rabbitmqUrl: rabbit.url, taskQueue, queue, env: { QUEUE_PREFETCH: '32' } });
      consumers.push(consumer);
      const before = await reserved();
      // Killed while it holds a full prefetch of received, unacknowledged messages.
      await until(async () => (await reserved()) > before + 5, `round ${round}: progress`, 120_000);
      consumer.kill('SIGKILL');
      expect(await consumer.exited).toBe('SIGKILL');
      kills++;
    }
    const last = await startConsumerProcess({ rabbitmqUrl: rabbit.url, taskQueue, queue });
    consumers.push(last);
    await until(async () => (await reserved()) === keys.length, 'every message reserved', 240_000);
    await until(async () => (await operationsByKeys(keys)).every((op) => op.status === 'succeeded' && Number(op.events) === 1), 'every operation finished', 240_000);
    const operations = await operationsByKeys(keys);
    expect(operations).toHaveLength(keys.length);
    // One run each: one outcome event per operation, and no more operations than messages.
    for (const op of operations) expect(Number(op.events)).toBe(1);
    expect(kills).toBe(4);
    // The last consumer received what the killed one held unacknowledged, flagged as redelivered by RabbitMQ.
    expect(await metricValue(last.metricsUrl, 'onceflow_queue_redeliveries_total')).toBeGreaterThan(0);
    expect(await metricValue(last.metricsUrl, 'onceflow_idempotency_requests_total', { entry_point: 'queue', outcome: 'new' })).toBeLessThanOrEqual(keys.length);
    expect(await drainQueue(rabbit.url, `${queue}.dead-letter`)).toHaveLength(0);
  });
});
