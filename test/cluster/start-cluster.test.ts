import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../dev/ports';

const ROOT = path.resolve(__dirname, '../..');

/**
 * `onceflow start --temporal cluster` as a user runs it: a scratch state
 * directory (its tools folder points at this run's server build, so nothing
 * is built twice), free ports, an operation through the api, then Ctrl-C.
 */
describe('onceflow start --temporal cluster', () => {
  let stateDir: string;
  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-start-cluster-'));
    await chmod(stateDir, 0o755);
    await mkdir(path.join(ROOT, '.onceflow', 'tools'), { recursive: true });
    await symlink(path.join(ROOT, '.onceflow', 'tools'), path.join(stateDir, 'tools'));
  });
  afterAll(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it('serves an operation on the cluster and stops the roles, then the four services, then PostgreSQL on Ctrl-C', async () => {
    const ports = Object.fromEntries(
      await Promise.all(
        ['PORT', 'TEMPORAL_DEV_PORT', 'ONCEFLOW_EMBEDDED_PG_PORT', 'WORKER_METRICS_PORT', 'WORKER_SDK_METRICS_PORT', 'RELAY_METRICS_PORT', 'GEMINI_OFFLINE_PORT'].map(
          async (name) => [name, String(await findFreePort())] as const,
        ),
      ),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--temporal', 'cluster'], {
      cwd: ROOT,
      env: { ...process.env, ...ports, ONCEFLOW_STATE_DIR: stateDir, DATABASE_URL: '', GEMINI_API_KEY: '', ONCEFLOW_TENANTS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 240_000;
      while (!/onceflow is up on a Temporal cluster/.test(output)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the stack did not come up:\n${output}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(output).toContain(`frontend 127.0.0.1:${ports.TEMPORAL_DEV_PORT}`);
      const response = await fetch(`http://127.0.0.1:${ports.PORT}/v1/operations/generate-content`, {
        method: 'POST',
        headers: { authorization: 'Bearer demo-key-change-me', 'idempotency-key': 'cluster-start', 'content-type': 'application/json', prefer: 'wait=60' },
        body: JSON.stringify({ prompt: 'hello cluster' }),
      });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { status: string }).status).toBe('succeeded');
    } finally {
      // what a terminal does on Ctrl-C: SIGINT to the foreground process group
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
    }
    expect(await exited).toBe(0);
    const order = ['stopped api', 'stopped worker', 'stopped gemini-offline', 'stopped temporal cluster', 'stopped postgres'].map((line) => output.indexOf(line));
    expect(order.every((index) => index >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });
});
