import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../dev/ports';

/**
 * stop() of the embedded PostgreSQL is what `make start` and jest's global
 * teardown wait on last. It must return whatever state the server is in.
 */
async function runFixture(mode: 'exited' | 'frozen'): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'onceflow-pgstop-'));
  await chmod(dir, 0o755);
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures/postgres-stop.ts'), path.join(dir, 'pg'), String(await findFreePort()), mode], {
      cwd: path.resolve(__dirname, '../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    // A hung stop() shows up as this timer, not as a jest timeout with a server left behind.
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearTimeout(timer);
    // a failing run must not leave a (possibly SIGSTOPped) postmaster behind
    const postmaster = Number(/^postmaster (\d+)$/m.exec(output)?.[1]);
    if (postmaster > 0) {
      try {
        process.kill(postmaster, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    return { code, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('embedded PostgreSQL stop()', () => {
  it('returns at once when the postmaster already exited (a Ctrl-C reached it first)', async () => {
    const { code, output } = await runFixture('exited');
    expect(output).toMatch(/^stopped \d+ no$/m);
    expect(code).toBe(0);
    expect(Number(/^stopped (\d+)/m.exec(output)![1])).toBeLessThan(1_000);
  }, 90_000);

  it('still returns, with the postmaster gone, when a fast shutdown can never finish', async () => {
    const { code, output } = await runFixture('frozen');
    // grace 1 s, then SIGQUIT (ignored while stopped), then SIGKILL 5 s later
    expect(output).toMatch(/^stopped \d+ no$/m);
    expect(code).toBe(0);
  }, 90_000);
});
