import http from 'node:http';
import net from 'node:net';

/**
 * What the proxy does with the n-th connection:
 * - `pass`: forwards both ways;
 * - `reset-after-accept`: forwards the request, and as soon as the upstream
 *   server starts answering (so it has accepted and acted on the request),
 *   resets the client's socket instead of passing the answer on.
 */
export type ConnectionFault = 'pass' | 'reset-after-accept';

export interface FaultProxy {
  port: number;
  url: string;
  /** Per connection, in order: the fault applied; connections past the plan pass. */
  log: ConnectionFault[];
  /** Starts accepting (for a proxy created with `listening: false`). */
  listen(): Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy in front of `upstreamPort` that injects faults by connection number. */
export async function startFaultProxy(options: { upstreamPort: number; plan?: ConnectionFault[]; port?: number; listening?: boolean }): Promise<FaultProxy> {
  const plan = [...(options.plan ?? [])];
  const log: ConnectionFault[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const fault = plan.shift() ?? 'pass';
    log.push(fault);
    const upstream = net.connect(options.upstreamPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    if (fault === 'pass') {
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    } else {
      upstream.once('data', () => {
        client.resetAndDestroy();
        upstream.destroy();
      });
    }
  });
  const listen = () => new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  if (options.listening !== false) await listen();
  const port = options.port ?? (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log,
    listen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}

/** One request that passed through an HTTP fault proxy, with the fault applied to it. */
export interface ProxiedRequest {
  fault: ConnectionFault;
  method: string;
  path: string;
  idempotencyKey: string | undefined;
}

export interface HttpFaultProxy {
  url: string;
  /** Per request, in order: what it was and the fault applied; requests past the plan pass. */
  log: ProxiedRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of `upstreamPort` that injects faults by request
 * number, not by connection: a client that keeps its connection alive sends
 * many requests over one socket, so a per-connection plan would skip faults.
 * `reset-after-accept` forwards the request and, once the upstream server has
 * answered (it accepted and acted on the request), resets the client's
 * connection instead of passing the answer on.
 */
export async function startHttpFaultProxy(options: { upstreamPort: number; plan?: ConnectionFault[] }): Promise<HttpFaultProxy> {
  const plan = [...(options.plan ?? [])];
  const log: ProxiedRequest[] = [];
  const server = http.createServer((request, response) => {
    const fault = plan.shift() ?? 'pass';
    const key = request.headers['idempotency-key'];
    log.push({ fault, method: request.method ?? '', path: request.url ?? '', idempotencyKey: Array.isArray(key) ? key.join(', ') : key });
    const upstream = http.request(
      { host: '127.0.0.1', port: options.upstreamPort, method: request.method, path: request.url, headers: request.headers, agent: false },
      (answer) => {
        if (fault === 'reset-after-accept') {
          answer.destroy();
          request.socket.resetAndDestroy();
          return;
        }
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => request.socket.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
