import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, startTestApi, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';
import type { TestWorker } from '../helpers/temporal';
import { until } from '../helpers/until';
import type { FakeGeminiControl } from '../fakes/gemini';

/**
 * Every Gemini call is held until the test releases it, so each operation
 * stays running and each `Prefer: wait` request really waits.
 */
describe('Prefer: wait cannot exhaust the API', () => {
  let pool: Pool;
  let temporal: Client;
  let control: FakeGeminiControl;
  let worker: TestWorker;
  let api: TestApi;
  let close = async () => {};
  beforeAll(async () => {
    ({ pool, temporal, geminiControl: control, worker, api, close } = await startTestStack({
      gemini: {},
      worker: { geminiTimeoutMs: 60_000 },
      api: { config: { ONCEFLOW_MAX_WAITING_PER_TENANT: 2, ONCEFLOW_MAX_WAITING_PER_PROCESS: 3, ONCEFLOW_MAX_WAIT_SECONDS: 120 } },
    }));
  });
  afterEach(async () => {
    await control.release();
  });
  afterAll(async () => {
    // Held answers first: the worker's shutdown waits for its calls in flight.
    await control?.release();
    await close();
  });

  const waiting = async () => (await api.metricsRegistry.getSingleMetric('onceflow_api_waiting_requests')!.get()).values[0]?.value ?? 0;
  const refused = async (reason: string) =>
    (await api.metricsRegistry.getSingleMetric('onceflow_api_waits_refused_total')!.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  const hold = (n: number) => control.script(Array.from({ length: n }, () => ({ kind: 'ok' as const, hold: true })));

  it('answers at once beyond the per-tenant and per-process caps: 202 for a new operation, 409 with Retry-After for a running one', async () => {
    await hold(6);
    const greedy = await createApiTenant(pool, 'greedy');
    const other = await createApiTenant(pool, 'other');
    const third = await createApiTenant(pool, 'third');
    const wait = { prefer: 'wait=100' };
    const firstKey = randomUUID();
    const held = [
      postOperation(api.baseUrl, { apiKey: greedy.apiKey, key: firstKey, body: { prompt: 'held 1' }, headers: wait }),
      postOperation(api.baseUrl, { apiKey: greedy.apiKey, key: randomUUID(), body: { prompt: 'held 2' }, headers: wait }),
    ];
    await until(async () => (await waiting()) === 2, 'two waits of the greedy tenant');

    // Its third wait would pass its cap: started, answered 202 at once.
    const beyond = await postOperation(api.baseUrl, { apiKey: greedy.apiKey, key: randomUUID(), body: { prompt: 'third' }, headers: wait });
    expect(beyond.status).toBe(202);
    expect(beyond.json!.status).toBe('running');
    // A repeat of its running operation: the usual in-progress answer, not a wait.
    const repeat = await postOperation(api.baseUrl, { apiKey: greedy.apiKey, key: firstKey, body: { prompt: 'held 1' }, headers: wait });
    expect(repeat.status).toBe(409);
    expect(repeat.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(repeat.json!.type).toBe('https://onceflow.dev/problems/operation-in-progress');
    expect(await refused('tenant')).toBe(2);

    // Another tenant still gets its wait: the greedy one holds only its share.
    const otherWait = postOperation(api.baseUrl, { apiKey: other.apiKey, key: randomUUID(), body: { prompt: 'other' }, headers: wait });
    await until(async () => (await waiting()) === 3, 'the other tenant waiting');
    // The process cap (3) is reached: a third tenant is answered at once too.
    const full = await postOperation(api.baseUrl, { apiKey: third.apiKey, key: randomUUID(), body: { prompt: 'third tenant' }, headers: wait });
    expect(full.status).toBe(202);
    expect(await refused('process')).toBe(1);

    // Released, the waits end with the answer.
    await until(async () => {
      await control.release();
      return (await waiting()) === 0;
    }, 'the held calls answered and the waits over');
    for (const answer of await Promise.all([...held, otherWait])) expect(answer.status).toBe(200);
  });

  it('stops waiting, and frees its slot, when the client disconnects mid-wait', async () => {
    await hold(1);
    const tenant = await createApiTenant(pool, 'gone');
    const key = randomUUID();
    const url = new URL(api.baseUrl);
    const body = JSON.stringify({ prompt: 'the client goes away' });
    const socket = net.connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /v1/operations/generate-content HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${tenant.apiKey}\r\nIdempotency-Key: ${key}\r\n` +
        `Prefer: wait=100\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await until(async () => (await waiting()) === 1, 'the request waiting');
    const { rows: before } = await pool.query('SELECT status FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(before).toEqual([{ status: 'running' }]);
    socket.destroy();
    // The operation is still held by the fake: only the disconnect can end this wait.
    await until(async () => (await waiting()) === 0, 'the wait ended by the disconnect');
    const { rows: after } = await pool.query('SELECT status FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(after).toEqual([{ status: 'running' }]);
  });

  it('never re-reads the stored request body while it waits', async () => {
    let inputReads = 0;
    let stateReads = 0;
    const counting = new Proxy(pool, {
      get(target, property, receiver) {
        if (property === 'query') {
          return (...args: Parameters<Pool['query']>) => {
            const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string }).text ?? '');
            if (/^\s*SELECT\b[\s\S]*\binput\b[\s\S]*\bFROM operations\b/i.test(text)) inputReads += 1;
            if (/^\s*SELECT\b[\s\S]*\bFROM operations WHERE\b/i.test(text)) stateReads += 1;
            return (target.query as (...a: unknown[]) => unknown)(...args);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const reader = await startTestApi({ pool: counting, temporal, taskQueue: worker.taskQueue, config: { ONCEFLOW_MAX_WAIT_SECONDS: 120 } });
    try {
      await hold(1);
      const tenant = await createApiTenant(pool, 'reader');
      const waited = postOperation(reader.baseUrl, { apiKey: tenant.apiKey, key: randomUUID(), body: { prompt: 'x'.repeat(90_000) }, headers: { prefer: 'wait=100' } });
      const waitingHere = async () => (await reader.metricsRegistry.getSingleMetric('onceflow_api_waiting_requests')!.get()).values[0]?.value ?? 0;
      await until(async () => (await waitingHere()) === 1, 'the request waiting');
      // The fast-path read, then the waiter's first check and at least two polls.
      await until(() => stateReads >= 4, 'the wait polled its row', 60_000);
      await until(async () => {
        await control.release();
        return (await waitingHere()) === 0;
      }, 'the held call answered');
      expect((await waited).status).toBe(200);
      expect(inputReads).toBe(0);
    } finally {
      await reader.close();
    }
  });
});
