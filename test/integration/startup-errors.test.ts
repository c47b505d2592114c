import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { assertPortFree, findFreePort } from '../../dev/ports';
import { testInfra } from '../helpers/infra';
import { outputUntilExit, startProcess } from '../helpers/processes';

/**
 * Each way a process can fail to start ends with one line saying what is wrong
 * and how to fix it, never a stack trace, and the process exits.
 */
describe('startup failures are one clear line', () => {
  it('names the variable when a value is bad', async () => {
    const worker = startProcess('worker', { DATABASE_URL: testInfra().databaseUrl, DATABASE_POOL_SIZE: 'many' });
    expect(await worker.exited).toBe(2);
    expect(worker.output()).toMatch(/invalid configuration: DATABASE_POOL_SIZE/);
    expect(worker.output()).not.toMatch(/\n\s+at /);
  });

  it('says PostgreSQL is unreachable when DATABASE_URL points nowhere', async () => {
    const port = await findFreePort();
    const worker = startProcess('worker', { DATABASE_URL: `postgres://x:y@127.0.0.1:${port}/none` });
    expect(await worker.exited).toBe(1);
    expect(worker.output()).toMatch(/cannot reach PostgreSQL .* — start PostgreSQL or fix DATABASE_URL\n/);
    expect(worker.output()).not.toMatch(/\n\s+at /);
  });

  it('says PostgreSQL is unreachable, and to fix DATABASE_URL, when its address never answers (a connect timeout)', async () => {
    const blackhole = spawn('python3', [path.join(__dirname, 'fixtures/tcp-blackhole.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        blackhole.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
        blackhole.once('exit', (code) => reject(new Error(`tcp-blackhole exited (${code})`)));
      });
      const startedAt = Date.now();
      const worker = startProcess('worker', { DATABASE_URL: `postgres://x:secret@127.0.0.1:${port}/none` });
      // bounded: the pool's connect timeout is a few seconds; a hang fails here, not at jest's timeout
      const timer = setTimeout(() => worker.kill('SIGKILL'), 60_000);
      const code = await worker.exited;
      clearTimeout(timer);
      expect(code).toBe(1);
      expect(Date.now() - startedAt).toBeLessThan(60_000);
      expect(worker.output()).toMatch(new RegExp(`cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port} \\(timeout: [^)]*\\) — start PostgreSQL or fix DATABASE_URL\n`));
      expect(worker.output()).not.toContain('secret');
      expect(worker.output()).not.toMatch(/\n\s+at /);
    } finally {
      blackhole.kill();
    }
  }, 90_000);

  it('says Temporal is unreachable when TEMPORAL_ADDRESS points nowhere', async () => {
    const port = await findFreePort();
    const worker = startProcess('worker', {
      DATABASE_URL: testInfra().databaseUrl,
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
    });
    expect(await worker.exited).toBe(1);
    expect(worker.output()).toMatch(new RegExp(`cannot reach Temporal at 127.0.0.1:${port}`));
    expect(worker.output()).not.toMatch(/\n\s+at /);
  });

  it('requires DATABASE_URL when a process runs alone', async () => {
    const worker = startProcess('worker', { DATABASE_URL: '' });
    expect(await worker.exited).toBe(2);
    expect(worker.output()).toMatch(/DATABASE_URL: required when this process runs alone/);
  });

  it('names TEMPORAL_CLI_PATH when it points at no binary, and starts nothing', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start'], {
      cwd: `${__dirname}/../..`,
      env: {
        ...process.env,
        TEMPORAL_CLI_PATH: '/nonexistent/temporal',
        LOG_LEVEL: 'info',
        DATABASE_URL: testInfra().databaseUrl,
        ...Object.fromEntries(
          await Promise.all(
            ['PORT', 'TEMPORAL_DEV_PORT', 'TEMPORAL_UI_PORT', 'WORKER_METRICS_PORT', 'WORKER_SDK_METRICS_PORT', 'RELAY_METRICS_PORT', 'GEMINI_OFFLINE_PORT'].map(
              async (name) => [name, String(await findFreePort())],
            ),
          ),
        ),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { code, output } = await outputUntilExit(child);
    expect(code).toBe(1);
    expect(output).toMatch(/onceflow start: TEMPORAL_CLI_PATH=\/nonexistent\/temporal is not an executable file — point it at a `temporal` binary/);
    expect(output).not.toMatch(/\n\s+at /);
  });

  it('refuses a port that is already taken, naming the variable', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    await expect(assertPortFree(port, 'PORT')).rejects.toThrow(`port ${port} is already in use`);
    await new Promise((resolve) => blocker.close(resolve));
  });
});
