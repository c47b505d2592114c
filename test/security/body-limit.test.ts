import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { Pool } from '../../src/db/pool';
import { createApiTenant, type TestApi } from '../helpers/api';
import { startTestStack } from '../helpers/stack';

describe('a body over the size limit', () => {
  let pool: Pool;
  let api: TestApi;
  let close = async () => {};
  beforeAll(async () => ({ pool, api, close } = await startTestStack({ api: {} })));
  afterAll(() => close());

  // fetch sends the whole body before it reads the answer: a server that
  // answers 413 and closes at once makes it see a reset, not the problem.
  it.each([
    ['with Content-Length', (body: Buffer) => ({ body })],
    ['chunked', (body: Buffer) => ({ body: new ReadableStream({ start: (c) => (c.enqueue(body), c.close()) }), duplex: 'half' })],
  ])('answers its 413 problem to a client that sends all 10 MB first (%s), and reserves nothing', async (_name, send) => {
    const tenant = await createApiTenant(pool);
    const key = randomUUID();
    const body = Buffer.alloc(10 * 1024 * 1024, 0x20);
    body.write('{"prompt":"', 0);
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${api.baseUrl}/v1/operations/generate-content`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tenant.apiKey}`, 'idempotency-key': key, 'content-type': 'application/json' },
        ...(send(body) as RequestInit),
      });
      expect(response.status).toBe(413);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({ type: 'https://onceflow.dev/problems/payload-too-large', status: 413, idempotencyKey: key });
    }
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1', [tenant.tenantId]);
    expect(rows[0].n).toBe(0);
  });

  it('reads the whole refused body before answering, so the connection stays usable for the next request', async () => {
    const tenant = await createApiTenant(pool);
    const url = new URL(api.baseUrl);
    const body = Buffer.alloc(10 * 1024 * 1024, 0x20);
    const socket = net.connect(Number(url.port), url.hostname);
    let received = '';
    let closedByServer = false;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('end', () => (closedByServer = true));
    socket.on('error', () => (closedByServer = true));
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /v1/operations/generate-content HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${tenant.apiKey}\r\n` +
        `Idempotency-Key: ${randomUUID()}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    // Sent in chunks, each after the previous left: a server that closed
    // after its early answer makes one of these writes fail (EPIPE/reset).
    for (let offset = 0; offset < body.length; offset += 256 * 1024) {
      await new Promise<void>((resolve) => socket.write(body.subarray(offset, offset + 256 * 1024), () => resolve()));
    }
    const answered = () => (received.match(/HTTP\/1\.1 \d{3}/g) ?? []).length;
    await waitUntil(() => answered() >= 1 || closedByServer);
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    expect(received).not.toMatch(/\r\nconnection: close\r\n/i);
    // The same connection serves a second request: the server read the body to its end.
    socket.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
    await waitUntil(() => closedByServer);
    expect(answered()).toBe(2);
    expect(received).toMatch(/HTTP\/1\.1 200 OK[\s\S]*\{"status":"ok"\}$/);
    socket.destroy();
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
}
