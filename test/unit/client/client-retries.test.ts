import { OnceflowClient } from '../../../src/client';
import {
  OnceflowAbortError,
  OnceflowDeadlineError,
  OnceflowNetworkError,
  OnceflowProblemError,
} from '../../../src/client/errors';
import { hang, json, ok, problem, resetAfterAccept, startScriptedServer, type Step } from './scripted-server';

/**
 * The client's retry behaviour against a real HTTP server on localhost that
 * answers by a script (real sockets, real resets); only the waits between
 * attempts are recorded instead of slept, so the tests see every delay the
 * client chose.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function withServer(steps: Step[], run: (server: Awaited<ReturnType<typeof startScriptedServer>>, waits: number[], client: OnceflowClient) => Promise<void>, clientOptions: Partial<ConstructorParameters<typeof OnceflowClient>[0]> = {}) {
  const server = await startScriptedServer(steps);
  const waits: number[] = [];
  const client = new OnceflowClient({
    baseUrl: server.baseUrl,
    apiKey: 'test-key',
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...clientOptions,
  });
  try {
    await run(server, waits, client);
  } finally {
    await server.close();
  }
}

const keysOf = (seen: { headers: Record<string, unknown> }[]) => seen.map((r) => r.headers['idempotency-key']);

describe('OnceflowClient retries', () => {
  it('retries a 503 with the same generated Idempotency-Key and returns the 200 that follows', async () => {
    await withServer([problem(503, 'service-unavailable', { 'retry-after': '0' }), ok()], async (server, waits, client) => {
      const response = await client.operations.generateContent({ prompt: 'hi' });
      expect(server.seen).toHaveLength(2);
      const keys = keysOf(server.seen);
      expect(keys[0]).toMatch(UUID);
      expect(keys[1]).toBe(keys[0]);
      expect(response.idempotencyKey).toBe(keys[0]);
      expect(response).toMatchObject({ status: 200, attempts: 2, replayed: false });
      expect(response.operation.result?.text).toBe('hello');
      expect(waits).toHaveLength(1);
      expect(server.seen[0]!.headers.authorization).toBe('Bearer test-key');
      expect(JSON.parse(server.seen[1]!.body)).toEqual({ prompt: 'hi' });
    });
  });

  it('retries when the connection is reset after the server read the request, and reports the replay', async () => {
    const firstSeenMs = 1_790_000_000_123;
    await withServer(
      [resetAfterAccept, ok(200, { 'idempotent-replayed': 'true', 'idempotency-first-seen': String(firstSeenMs) })],
      async (server, _waits, client) => {
        const response = await client.operations.generateContent({ prompt: 'hi' }, { idempotencyKey: 'order-42' });
        expect(keysOf(server.seen)).toEqual(['order-42', 'order-42']);
        expect(response.replayed).toBe(true);
        expect(response.firstSeenAt).toEqual(new Date(firstSeenMs));
        expect(response.attempts).toBe(2);
      },
    );
  });

  it('waits at least the Retry-After seconds the server asks for', async () => {
    await withServer([problem(429, 'rate-limited', { 'retry-after': '7' }), ok()], async (_server, waits, client) => {
      await client.operations.generateContent({ prompt: 'hi' });
      expect(waits).toHaveLength(1);
      expect(waits[0]).toBeGreaterThanOrEqual(7_000);
    });
  });

  it('reads a Retry-After given as an HTTP date against its clock', async () => {
    const nowMs = Date.parse('2026-11-22T10:00:00.000Z');
    await withServer(
      [problem(503, 'service-unavailable', { 'retry-after': 'Sun, 22 Nov 2026 10:00:04 GMT' }), ok()],
      async (_server, waits, client) => {
        await client.operations.generateContent({ prompt: 'hi' });
        expect(waits[0]).toBeGreaterThanOrEqual(4_000);
      },
      { now: () => nowMs },
    );
  });

  it('retries 409 operation-in-progress until the operation has finished', async () => {
    await withServer(
      [problem(409, 'operation-in-progress', { 'retry-after': '1' }), problem(409, 'operation-in-progress', { 'retry-after': '1' }), ok(200, { 'idempotent-replayed': 'true', 'idempotency-first-seen': '1' })],
      async (server, waits, client) => {
        const response = await client.operations.generateContent({ prompt: 'hi' }, { wait: 5 });
        expect(server.seen).toHaveLength(3);
        expect(new Set(keysOf(server.seen)).size).toBe(1);
        expect(server.seen.every((r) => r.headers.prefer === 'wait=5')).toBe(true);
        expect(waits.every((ms) => ms >= 1_000)).toBe(true);
        expect(response.replayed).toBe(true);
      },
    );
  });

  it.each([
    [400, 'invalid-request'],
    [401, 'unauthorized'],
    [404, 'unknown-operation-type'],
    [413, 'payload-too-large'],
    [415, 'unsupported-media-type'],
    [422, 'idempotency-key-reused'],
  ])('never retries %i (%s) and throws it as a typed problem', async (status, slug) => {
    await withServer([problem(status, slug, { 'retry-after': '0' }), ok()], async (server, waits, client) => {
      const error = await client.operations.generateContent({ prompt: 'hi' }).catch((e: unknown) => e);
      expect(server.seen).toHaveLength(1);
      expect(waits).toHaveLength(0);
      expect(error).toBeInstanceOf(OnceflowProblemError);
      expect(error).toMatchObject({ status, problem: slug, type: `https://onceflow.dev/problems/${slug}`, detail: `scripted ${slug}`, attempts: 1 });
      expect((error as OnceflowProblemError).idempotencyKey).toBe(server.seen[0]!.headers['idempotency-key']);
    });
  });

  it('does not retry a replayed operation failure (502) and exposes the failed operation', async () => {
    const failed = { type: 'https://onceflow.dev/problems/provider-failed', title: 'Provider failed', status: 502, detail: 'every model failed', operation: { status: 'failed', idempotencyKey: 'k1' } };
    await withServer([json(502, failed, { 'idempotent-replayed': 'true', 'idempotency-first-seen': '1000' }), ok()], async (server, _waits, client) => {
      const error = (await client.operations.generateContent({ prompt: 'hi' }, { idempotencyKey: 'k1' }).catch((e: unknown) => e)) as OnceflowProblemError;
      expect(server.seen).toHaveLength(1);
      expect(error.replayed).toBe(true);
      expect(error.firstSeenAt).toEqual(new Date(1000));
      expect(error.operation).toMatchObject({ status: 'failed' });
    });
  });

  it('stops after maxAttempts and reports how many attempts were made', async () => {
    await withServer([problem(503, 'service-unavailable', { 'retry-after': '0' })], async (server, waits, client) => {
      const error = await client.operations.generateContent({ prompt: 'hi' }, { retry: { maxAttempts: 3 } }).catch((e: unknown) => e);
      expect(server.seen).toHaveLength(3);
      expect(new Set(keysOf(server.seen)).size).toBe(1);
      expect(waits).toHaveLength(2);
      expect(error).toBeInstanceOf(OnceflowProblemError);
      expect(error).toMatchObject({ status: 503, attempts: 3 });
    });
  });

  it('gives up with the last answer rather than sleep past its deadline', async () => {
    await withServer([problem(503, 'service-unavailable', { 'retry-after': '120' }), ok()], async (server, waits, client) => {
      const error = await client.operations.generateContent({ prompt: 'hi' }, { retry: { deadlineMs: 10_000 } }).catch((e: unknown) => e);
      expect(server.seen).toHaveLength(1);
      expect(waits).toHaveLength(0);
      expect(error).toMatchObject({ status: 503, retryAfterMs: 120_000 });
    });
  });

  it('stops at the deadline while a clock-driven wait would run past it', async () => {
    let nowMs = 0;
    await withServer(
      [problem(503, 'service-unavailable', { 'retry-after': '1' })],
      async (server, waits, client) => {
        const error = await client.operations
          .generateContent({ prompt: 'hi' }, { retry: { deadlineMs: 5_500, maxAttempts: 100 } })
          .catch((e: unknown) => e);
        // waits of ≥ 1 s each inside a 5.5 s budget: at most 6 attempts, never 100
        expect(server.seen.length).toBeLessThanOrEqual(6);
        expect(waits.reduce((a, b) => a + b, 0)).toBeLessThan(5_500);
        expect(error).toMatchObject({ status: 503 });
      },
      {
        now: () => nowMs,
        sleep: async (ms) => {
          nowMs += ms;
        },
      },
    );
  });

  it('retries an attempt that hangs past its attempt timeout, with the same key', async () => {
    await withServer([hang, ok()], async (server, _waits, client) => {
      const response = await client.operations.generateContent({ prompt: 'hi' }, { retry: { attemptTimeoutMs: 300 } });
      expect(server.seen).toHaveLength(2);
      expect(keysOf(server.seen)[1]).toBe(keysOf(server.seen)[0]);
      expect(response.attempts).toBe(2);
    });
  });

  it('throws OnceflowDeadlineError when the deadline cuts an attempt short', async () => {
    await withServer([hang], async (server, _waits, client) => {
      const error = await client.operations.generateContent({ prompt: 'hi' }, { retry: { deadlineMs: 300 } }).catch((e: unknown) => e);
      expect(server.seen).toHaveLength(1);
      expect(error).toBeInstanceOf(OnceflowDeadlineError);
      expect((error as OnceflowDeadlineError).idempotencyKey).toBe(server.seen[0]!.headers['idempotency-key']);
    });
  });

  it('reports a network error with the key after the attempts run out on a refused port', async () => {
    const server = await startScriptedServer([ok()]);
    const baseUrl = server.baseUrl;
    await server.close();
    const waits: number[] = [];
    const client = new OnceflowClient({ baseUrl, apiKey: 'k', sleep: async (ms) => void waits.push(ms), retry: { maxAttempts: 4 } });
    const error = await client.operations.generateContent({ prompt: 'hi' }, { idempotencyKey: 'abc' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OnceflowNetworkError);
    expect(error).toMatchObject({ attempts: 4, idempotencyKey: 'abc' });
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    expect(waits).toHaveLength(3);
  });

  it('retries a proxy’s non-JSON 503 and keeps its text as the problem detail', async () => {
    const html: Step = (_request, response) => {
      response.writeHead(503, { 'content-type': 'text/html' });
      response.end('<html>upstream down</html>');
    };
    await withServer([html], async (server, _waits, client) => {
      const error = (await client.operations.generateContent({ prompt: 'hi' }, { retry: { maxAttempts: 2 } }).catch((e: unknown) => e)) as OnceflowProblemError;
      expect(server.seen).toHaveLength(2);
      expect(error).toMatchObject({ status: 503, type: 'about:blank', problem: 'http-503' });
      expect(error.detail).toContain('upstream down');
    });
  });

  it('stops retrying when the caller aborts', async () => {
    const controller = new AbortController();
    await withServer(
      [problem(503, 'service-unavailable', { 'retry-after': '0' })],
      async (server, _waits, client) => {
        const error = await client.operations.generateContent({ prompt: 'hi' }, { signal: controller.signal }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(OnceflowAbortError);
        expect(server.seen).toHaveLength(1);
      },
      {
        sleep: async () => {
          controller.abort();
          throw new Error('aborted');
        },
      },
    );
  });

  it('reports 202 accepted and Preference-Applied as the server sent them', async () => {
    await withServer([json(202, { status: 'running' }, { 'preference-applied': 'wait=2' })], async (server, _waits, client) => {
      const response = await client.operations.generateReport({ prompt: 'a report' }, { wait: 2 });
      expect(server.seen[0]!.url).toBe('/v1/operations/generate-report');
      expect(response).toMatchObject({ status: 202, preferenceApplied: 'wait=2', replayed: false, firstSeenAt: undefined });
    });
  });

  it('reads an operation with get() and does not retry its 404', async () => {
    await withServer([ok(), problem(404, 'operation-not-found')], async (server, _waits, client) => {
      const operation = await client.get('generate-content', 'a key/with slash');
      expect(server.seen[0]).toMatchObject({ method: 'GET', url: '/v1/operations/generate-content/a%20key%2Fwith%20slash' });
      expect(operation.status).toBe('succeeded');
      await expect(client.get('generate-content', 'gone')).rejects.toMatchObject({ status: 404, problem: 'operation-not-found' });
      expect(server.seen).toHaveLength(2);
    });
  });

  it('types each method from the server’s zod schema', () => {
    const client = new OnceflowClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'k' });
    const typeOnly = (call: () => unknown) => expect(typeof call).toBe('function');
    // @ts-expect-error generate-content has no `prompts` field: a schema/typo mismatch fails to compile
    typeOnly(() => client.operations.generateContent({ prompts: 'x' }));
    // @ts-expect-error temperature is a number in the server schema
    typeOnly(() => client.operations.generateContent({ prompt: 'x', temperature: 'hot' }));
    // @ts-expect-error unknown operation types have no method
    typeOnly(() => client.operations.generateVideo({ prompt: 'x' }));
    typeOnly(() => client.operations.generateContent({ prompt: 'x', metadata: { traceId: 't' } }));
  });
});
