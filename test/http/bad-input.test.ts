import { randomUUID } from 'node:crypto';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, postOperation, rawPost, type TestApi } from '../helpers/api';
import { uniqueTaskQueue } from '../helpers/temporal';
import { startTestStack } from '../helpers/stack';

interface BadRequest {
  name: string;
  status: number;
  problem: string;
  rawBody?: string;
  contentType?: string;
  key?: string | null;
}

/** A few hundred malformed requests, generated; every answer is checked and nothing is reserved. */
function generateBadRequests(): BadRequest[] {
  const cases: BadRequest[] = [];
  const bodies: [string, string][] = [
    ['duplicate keys', '{"prompt":"a","prompt":"b"}'],
    ['__proto__', '{"prompt":"a","__proto__":{"x":1}}'],
    ['unsafe integer', '{"prompt":"a","maxOutputTokens":9007199254740993}'],
    ['NUL', '{"prompt":"a\\u0000"}'],
    ['lone surrogate', '{"prompt":"\\ud83d"}'],
    ['truncated', '{"prompt":"a"'],
    ['not JSON', 'prompt=a'],
    ['empty', ''],
    ['array', '[{"prompt":"a"}]'],
    ['string', '"a"'],
    ['null', 'null'],
    ['number', '42'],
    ['wrong type', '{"prompt":42}'],
    ['empty prompt', '{"prompt":""}'],
    ['unknown field', '{"prompt":"a","promptt":"b"}'],
    ['temperature out of range', '{"prompt":"a","temperature":3}'],
    ['fractional token limit', '{"prompt":"a","maxOutputTokens":1.5}'],
    ['bad model name', '{"prompt":"a","model":"../../etc"}'],
  ];
  for (const [name, rawBody] of bodies) cases.push({ name: `body: ${name}`, status: 400, problem: 'invalid-request', rawBody });
  for (let depth = 33; depth <= 2000; depth += 97) {
    cases.push({ name: `nested ${depth}`, status: 400, problem: 'invalid-request', rawBody: `{"prompt":"a","metadata":${'['.repeat(depth)}${']'.repeat(depth)}}` });
  }
  // CR and LF are left out: they do not sit inside the header, they end it.
  for (const code of Array.from({ length: 32 }, (_, i) => i).filter((c) => c !== 10 && c !== 13)) {
    cases.push({ name: `control character ${code} in the key`, status: 400, problem: 'idempotency-key-invalid', key: `k${String.fromCharCode(code)}k` });
  }
  for (const length of [256, 300, 1000, 4000, 10_000]) {
    cases.push({ name: `key of ${length}`, status: 400, problem: 'idempotency-key-invalid', key: 'x'.repeat(length) });
  }
  cases.push({ name: 'DEL in the key', status: 400, problem: 'idempotency-key-invalid', key: 'k\x7fk' });
  // Raw bytes that are not UTF-8 (rawPost writes each character as one byte): lone continuation, overlong, truncated, 0xff.
  for (const bytes of [[0xff], [0xfe, 0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xe2, 0x82], [0x80], [0xed, 0xa0, 0x80], [0xc3, 0xa9]]) {
    cases.push({ name: `bytes ${Buffer.from(bytes).toString('hex')} in the key`, status: 400, problem: 'idempotency-key-invalid', key: `k${String.fromCharCode(...bytes)}k` });
  }
  cases.push({ name: 'no key', status: 400, problem: 'idempotency-key-missing', key: null });
  for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json', 'application/jsonx']) {
    cases.push({ name: `content type ${contentType}`, status: 415, problem: 'unsupported-media-type', contentType, rawBody: '{"prompt":"a"}' });
  }
  // Random junk bodies: printable noise is never valid for the schema.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 150; i++) {
    const length = 1 + Math.floor(random() * 60);
    const rawBody = Array.from({ length }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join('');
    cases.push({ name: `junk ${i}`, status: 400, problem: 'invalid-request', rawBody });
  }
  return cases;
}

describe('bad input', () => {
  let pool: Pool;
  let api: TestApi;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ pool, api, close } = await startTestStack({ api: { taskQueue: uniqueTaskQueue('bad-input') } }));
  });
  afterAll(() => close());

  it('answers every generated bad request with its 4xx problem, never a 500, and reserves nothing', async () => {
    const tenant = await createApiTenant(pool);
    const cases = generateBadRequests();
    expect(cases.length).toBeGreaterThan(200);
    const mismatches: string[] = [];
    for (const badRequest of cases) {
      const response =
        badRequest.key && /[^\x20-\x7e]/.test(badRequest.key)
          ? await rawPost(api.baseUrl, { apiKey: tenant.apiKey, keys: [badRequest.key] })
          : await postOperation(api.baseUrl, {
              apiKey: tenant.apiKey,
              key: badRequest.key === undefined ? randomUUID() : badRequest.key,
              rawBody: badRequest.rawBody ?? '{"prompt":"a"}',
              contentType: badRequest.contentType,
            }).then((r) => ({ status: r.status, contentType: r.headers.get('content-type') ?? undefined, json: r.json }));
      const ok =
        response.status === badRequest.status &&
        response.contentType?.startsWith('application/problem+json') &&
        response.json?.type === `https://onceflow.dev/problems/${badRequest.problem}`;
      if (!ok) mismatches.push(`${badRequest.name}: got ${response.status} ${JSON.stringify(response.json)}`);
    }
    expect(mismatches).toEqual([]);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(rows[0].n).toBe(0);
  });

  it('answers invalid UTF-8 and oversized bodies, byte for byte, with a 4xx problem and reserves nothing', async () => {
    const tenant = await createApiTenant(pool);
    const prefix = Buffer.from('{"prompt":"');
    const suffix = Buffer.from('"}');
    const invalidUtf8 = [[0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]];
    const cases: { name: string; body: Buffer; status: number; problem: string }[] = [
      ...invalidUtf8.map((bytes) => ({
        name: `invalid UTF-8 ${Buffer.from(bytes).toString('hex')}`,
        body: Buffer.concat([prefix, Buffer.from(bytes), suffix]),
        status: 400,
        problem: 'invalid-request',
      })),
      // ONCEFLOW_BODY_LIMIT_BYTES defaults to 1 MiB; one byte over is refused before parsing.
      ...[1_048_577, 2_000_000, 8_000_000].map((size) => ({
        name: `body of ${size} bytes`,
        body: Buffer.concat([prefix, Buffer.alloc(size - prefix.length - suffix.length, 'a'), suffix]),
        status: 413,
        problem: 'payload-too-large',
      })),
    ];
    const mismatches: string[] = [];
    for (const badRequest of cases) {
      const response = await fetch(`${api.baseUrl}/v1/operations/generate-content`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
        body: badRequest.body,
      }).catch((error: Error) => ({ status: 0, headers: new Headers(), text: async () => error.message }));
      const text = await response.text();
      const json = response.headers.get('content-type')?.startsWith('application/problem+json') ? (JSON.parse(text) as { type?: string }) : undefined;
      if (response.status !== badRequest.status || json?.type !== `https://onceflow.dev/problems/${badRequest.problem}`) {
        mismatches.push(`${badRequest.name}: got ${response.status} ${text.slice(0, 200)}`);
      }
    }
    expect(mismatches).toEqual([]);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(rows[0].n).toBe(0);
  });

  it('answers a percent-encoded NUL in any path or query parameter with 400, never a 5xx (PostgreSQL text refuses U+0000)', async () => {
    const tenant = await createApiTenant(pool);
    const urls = [
      '/v1/operations/generate-content/a%00b',
      '/v1/operations/generate-content/%00',
      '/v1/operations/gen%00erate-content/key',
      '/v1/dead-letters?eventId=%00',
      '/v1/dead-letters?eventId=evt%00x&limit=5',
      '/v1/subscriptions/%00',
      '/v1/operations/generate-content/key?x=%00',
    ];
    const answers: string[] = [];
    for (const url of urls) {
      const response = await fetch(`${api.baseUrl}${url}`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });
      const json = (await response.json()) as { type?: string };
      answers.push(`${url} → ${response.status} ${response.headers.get('content-type')?.split(';')[0]} ${json.type}`);
    }
    expect(answers).toEqual(urls.map((url) => `${url} → 400 application/problem+json https://onceflow.dev/problems/invalid-request`));
  });
});
