import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import path from 'node:path';
import { findFreePort } from '../../../dev/ports';

const ROOT = path.resolve(__dirname, '../../..');

describe('findFreePort', () => {
  it('hands concurrent pickers in separate processes different ports, below the ephemeral range, none of them bound', async () => {
    // Three processes picking at once, as parallel jest workers and harnesses do.
    const script = "import('./dev/ports.ts').then(async (m) => { const findFreePort = m.findFreePort ?? m.default.findFreePort; return console.log(JSON.stringify(await Promise.all(Array.from({ length: 40 }, () => findFreePort())))); })";
    const runs = await Promise.all(
      [1, 2, 3].map(() => promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT }).then(({ stdout }) => JSON.parse(stdout) as number[])),
    );
    const ports = [...runs.flat(), ...(await Promise.all(Array.from({ length: 40 }, () => findFreePort())))];
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(32_768);
    }
    // Each is bindable right now.
    for (const port of ports.slice(0, 20)) {
      await new Promise<void>((resolve, reject) => {
        const server = net.createServer().once('error', reject);
        server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve()));
      });
    }
  });

  it('never hands out a port something already listens on', async () => {
    const held = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const port = await findFreePort();
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen({ port, host: '127.0.0.1' }, resolve));
        return { port, server };
      }),
    );
    try {
      const picked = await Promise.all(Array.from({ length: 100 }, () => findFreePort()));
      for (const { port } of held) expect(picked).not.toContain(port);
    } finally {
      for (const { server } of held) server.close();
    }
  });
});
