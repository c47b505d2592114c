import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/dev/ports';
import { testInfra } from '../helpers/infra';

const ROOT = path.resolve(__dirname, '../..');
const PLANTED_API_KEY = `planted-api-key-${Math.random().toString(36).slice(2)}`;
const PLANTED_PROMPT = `planted prompt ${Math.random().toString(36).slice(2)}`;

interface Stack {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `onceflow start` as a user runs it (make start), on free ports and a scratch state directory. */
function startStack(env: NodeJS.ProcessEnv): Stack {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitFor(stack: Stack, pattern: RegExp, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(stack.output())) {
    if (stack.child.exitCode !== null) throw new Error(`stack exited early:\n${stack.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${stack.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('make start: the whole local system', () => {
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-stack-'));
    await chmod(stateDir, 0o755);
    env = {
      ONCEFLOW_STATE_DIR: stateDir,
      // reuse the CLI the test run already has, so nothing is installed twice
      TEMPORAL_CLI_PATH: testInfra().temporalBinary ?? '',
      PORT: String(await findFreePort()),
      TEMPORAL_DEV_PORT: String(await findFreePort()),
      TEMPORAL_UI_PORT: String(await findFreePort()),
      WORKER_METRICS_PORT: String(await findFreePort()),
      WORKER_SDK_METRICS_PORT: String(await findFreePort()),
      RELAY_METRICS_PORT: String(await findFreePort()),
      ONCEFLOW_EMBEDDED_PG_PORT: String(await findFreePort()),
      GEMINI_OFFLINE_PORT: String(await findFreePort()),
      DATABASE_URL: '',
      GEMINI_API_KEY: '',
      GEMINI_BASE_URL: '',
      // planted: neither may ever show up in any process's log
      ONCEFLOW_TENANTS: `demo:${PLANTED_API_KEY}`,
      LOG_LEVEL: 'debug',
    };
  });
  const stacks: Stack[] = [];
  afterEach(async () => {
    // a failed assertion must not leave a stack holding the ports
    for (const stack of stacks.splice(0)) {
      if (stack.child.exitCode === null) stack.child.kill('SIGINT');
      await stack.exited;
    }
  });
  afterAll(() => rm(stateDir, { recursive: true, force: true }));

  it('starts every part, says where each listens, stops on Ctrl-C, finds the first run’s data on a second start, and never logs a key or a prompt', async () => {
    const api = `http://127.0.0.1:${env.PORT}`;
    const first = startStack(env);
    stacks.push(first);
    await waitFor(first, /onceflow is up/);
    const out = first.output();
    expect(out).toContain(`temporal ui: http://localhost:${env.TEMPORAL_UI_PORT}`);
    expect(out).toMatch(/gemini: OFFLINE model server at http:\/\/127\.0\.0\.1:\d+/);
    expect(out).toContain(`api: ${api}`);
    expect(out).toMatch(/postgres: .*\[embedded/);
    // the Web UI answers
    expect((await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`)).status).toBe(200);

    const created = await fetch(`${api}/v1/operations/generate-content`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PLANTED_API_KEY}`, 'idempotency-key': 'survives-restart', 'content-type': 'application/json', prefer: 'wait=30' },
      body: JSON.stringify({ prompt: PLANTED_PROMPT }),
    });
    expect(created.status).toBe(200);
    const resource = (await created.json()) as { status: string; result: { text: string } };
    expect(resource.result.text).toContain('[offline model]');

    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('stopped.');

    const second = startStack(env);
    stacks.push(second);
    try {
      await waitFor(second, /onceflow is up/);
      expect(second.output()).toContain('schema up to date');
      const read = await fetch(`${api}/v1/operations/generate-content/survives-restart`, { headers: { authorization: `Bearer ${PLANTED_API_KEY}` } });
      expect(read.status).toBe(200);
      // Temporal kept its state too: the run is still there
      const { workflowId } = (await read.json()) as { workflowId: string };
      const ui = await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/api/v1/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
      expect(ui.status).toBe(200);
    } finally {
      second.child.kill('SIGINT');
      expect(await second.exited).toBe(0);
    }
    // Every process logged at debug level through a full run, and still:
    const logs = first.output() + second.output();
    expect(logs).toContain('"correlationId"');
    expect(logs).not.toContain(PLANTED_API_KEY);
    expect(logs).not.toContain(PLANTED_PROMPT);
  });

  it('refuses a taken port with one line naming the variable, and leaves nothing running', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(Number(env.PORT), '127.0.0.1', resolve));
    try {
      const stack = startStack({ ...env, LOG_LEVEL: 'info' }); // debug would add the stack trace on purpose
      stacks.push(stack);
      expect(await stack.exited).toBe(1);
      expect(stack.output()).toMatch(new RegExp(`onceflow start: port ${env.PORT} is already in use .* — stop whatever listens there, or set PORT to a free port`));
      expect(stack.output()).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
