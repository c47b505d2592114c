import net from 'node:net';

/**
 * A TCP proxy that can be partitioned: after `partition()`, bytes in either
 * direction are dropped (current and new connections alike) while the sockets
 * stay open, as when a network link dies silently. Put it between a worker
 * process and Temporal to stop exactly what the worker tells Temporal (an
 * activity completion, heartbeats) from a chosen moment on, while the worker
 * keeps running and keeps reaching PostgreSQL and Gemini directly.
 */
export interface PartitionProxy {
  /** `host:port` to hand the process as its TEMPORAL_ADDRESS. */
  address: string;
  partition(): void;
  close(): Promise<void>;
}

export async function startPartitionProxy(upstream: { host: string; port: number }): Promise<PartitionProxy> {
  let partitioned = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const remote = net.connect(upstream.port, upstream.host);
    for (const socket of [client, remote]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('data', (chunk: Buffer) => {
      if (partitioned) return;
      remote.write(chunk);
    });
    remote.on('data', (chunk: Buffer) => {
      if (!partitioned) client.write(chunk);
    });
    // The process's side closing (it died) always reaches the server, as the
    // kernel's reset of a killed process's sockets would: otherwise Temporal
    // keeps handing tasks to the dead worker's open long polls.
    client.on('close', () => remote.destroy());
    remote.on('close', () => partitioned || client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    partition: () => {
      partitioned = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** `host:port` → its parts (Temporal addresses in tests are `localhost:<port>`). */
export function parseAddress(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator);
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(address.slice(separator + 1)) };
}
