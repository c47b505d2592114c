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
