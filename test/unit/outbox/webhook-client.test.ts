import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AddressPolicy } from '../../../src/outbox/address-policy';
import { WebhookClient, WebhookTimeoutError } from '../../../src/outbox/webhook-client';

const loopbackAllowed = new AddressPolicy({ allowedHosts: ['127.0.0.1'] });

/** A real HTTP server on a free port; `handle` sees each request with how many came before it on the same connection. */
async function serve(handle: (request: http.IncomingMessage, response: http.ServerResponse, onConnection: number) => void) {
  const perSocket = new WeakMap<object, number>();
  const server = http.createServer((request, response) => {
    const n = perSocket.get(request.socket) ?? 0;
    perSocket.set(request.socket, n + 1);
    request.resume();
    request.on('end', () => handle(request, response, n));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('the relay’s webhook client', () => {
  const clients: WebhookClient[] = [];
  const client = () => {
    const c = new WebhookClient({ addressPolicy: loopbackAllowed, maxConnectionsPerOrigin: 4 });
    clients.push(c);
    return c;
  };
  afterEach(() => clients.splice(0).forEach((c) => c.close()));

  const post = (c: WebhookClient, url: string, timeoutMs = 5_000) =>
    c.post({ url, headers: { 'content-type': 'application/json', 'webhook-id': 'evt-1' }, body: '{"type":"t"}', timeoutMs });

  it('never follows a redirect: a 3xx is the answer, and the body goes nowhere the subscription does not name', async () => {
    const hits: string[] = [];
    const server = await serve((request, response) => {
      hits.push(request.url!);
      if (request.url === '/hook') response.writeHead(307, { location: '/elsewhere' }).end();
      else response.writeHead(200).end();
    });
    try {
      expect(await post(client(), server.url('/hook'))).toBe(307);
      expect(hits).toEqual(['/hook']);
    } finally {
      await server.close();
    }
  });

  it('times out a subscriber that sends its headers but never finishes the answer', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial'); // and never the rest
    });
    try {
      await expect(post(client(), server.url('/hook'), 300)).rejects.toBeInstanceOf(WebhookTimeoutError);
    } finally {
      await server.close();
    }
  });

  it('tells a request that timed out waiting for a free connection (nothing reached the subscriber) from one that timed out on the wire', async () => {
    let arrived = 0;
    const server = await serve(() => {
      arrived++; // and never answer
    });
    try {
      const c = new WebhookClient({ addressPolicy: loopbackAllowed, maxConnectionsPerOrigin: 1 });
      clients.push(c);
      const [onTheWire, queued] = await Promise.allSettled([post(c, server.url('/a'), 400), post(c, server.url('/b'), 200)]);
      expect(onTheWire).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ name: 'WebhookTimeoutError', sent: true }) });
      expect(queued).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ name: 'WebhookTimeoutError', sent: false }) });
      expect(arrived).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('sends again on a fresh connection when a kept-alive connection is dropped under the request, instead of failing the delivery', async () => {
    let requests = 0;
    const server = await serve((request, response, onConnection) => {
      requests++;
      // The second request on a connection: drop it, as a subscriber closing an idle connection does.
      if (onConnection > 0) request.socket.destroy();
      else response.writeHead(200).end();
    });
    try {
      // One connection, so the second request must go out on the kept-alive one.
      const c = new WebhookClient({ addressPolicy: loopbackAllowed, maxConnectionsPerOrigin: 1 });
      clients.push(c);
      expect(await post(c, server.url('/hook'))).toBe(200);
      expect(await post(c, server.url('/hook'))).toBe(200); // reused the connection, dropped, sent again
      expect(requests).toBe(3);
    } finally {
      await server.close();
    }
  });

  it('reports a subscriber that is not listening as a network error with its code', async () => {
    const server = await serve((_request, response) => response.writeHead(200).end());
    const url = server.url('/hook');
    await server.close();
    await expect(post(client(), url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
