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

  it('refuses a port that is already taken, naming the variable', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    await expect(assertPortFree(port, 'PORT')).rejects.toThrow(`port ${port} is already in use`);
    await new Promise((resolve) => blocker.close(resolve));
  });
});
