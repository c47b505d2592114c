import net from 'node:net';

/**
 * A TCP proxy that can be partitioned. After `partition()` the server side is
 * cut (the server sees the process's connections close, so it stops handing
 * tasks to its long polls), while the process's side stays open and every byte
 * it sends, on old connections or new ones, is dropped: as when a worker's
 * link to Temporal dies and the worker does not know. Put it between a worker
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
  const clients = new Set<net.Socket>();
  const remotes = new Set<net.Socket>();
  const track = (set: Set<net.Socket>, socket: net.Socket) => {
    set.add(socket);
    socket.on('close', () => set.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    track(clients, client);
    if (partitioned) {
      client.resume(); // read and drop
      return;
    }
    const remote = net.connect(upstream.port, upstream.host);
    track(remotes, remote);
    client.on('data', (chunk: Buffer) => {
      if (!partitioned) remote.write(chunk);
    });
    remote.on('data', (chunk: Buffer) => {
      if (!partitioned) client.write(chunk);
    });
    // A process that dies closes its side, and the server hears it; the
    // server's side going away (the partition) is never passed on.
    client.on('close', () => remote.destroy());
    remote.on('close', () => partitioned || client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    partition: () => {
      partitioned = true;
      for (const remote of remotes) remote.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of [...clients, ...remotes]) socket.destroy();
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
