import net from 'node:net';
import { assertPortFree, findFreePort } from '../../src/dev/ports';
import { testInfra } from '../helpers/infra';
import { startProcess } from '../helpers/processes';

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
    const { spawn } = await import('node:child_process');
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
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
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
