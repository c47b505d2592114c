import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../dev/ports';
import { until } from '../helpers/until';

const ROOT = path.resolve(__dirname, '../..');
const PORT_NAMES = [
  'PORT',
  'TEMPORAL_DEV_PORT',
  'TEMPORAL_UI_PORT',
  'ONCEFLOW_EMBEDDED_PG_PORT',
  'WORKER_METRICS_PORT',
  'WORKER_SDK_METRICS_PORT',
  'RELAY_METRICS_PORT',
  'GEMINI_OFFLINE_PORT',
] as const;

interface Stack {
  child: ChildProcess;
  ports: Record<(typeof PORT_NAMES)[number], string>;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * `onceflow start --temporal cluster` as a user runs it: a scratch state
 * directory (its tools folder points at this run's server and UI builds, so
 * nothing is built twice), free ports, in its own process group as a terminal
 * would run it.
 */
async function startStack(stateDir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Stack> {
  const ports = Object.fromEntries(await Promise.all(PORT_NAMES.map(async (name) => [name, String(await findFreePort())] as const))) as Stack['ports'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--temporal', 'cluster'], {
    cwd: ROOT,
    env: { ...process.env, ...ports, ONCEFLOW_STATE_DIR: stateDir, DATABASE_URL: '', GEMINI_API_KEY: '', ONCEFLOW_TENANTS: '', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 240_000;
  while (!/onceflow is up on a Temporal cluster/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGINT');
      throw new Error(`the stack did not come up:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { child, ports, output: () => output, exited };
}

async function generate(stack: Stack, key: string): Promise<{ status: string; workflowId: string }> {
  const response = await fetch(`http://127.0.0.1:${stack.ports.PORT}/v1/operations/generate-content`, {
    method: 'POST',
    headers: { authorization: 'Bearer demo-key-change-me', 'idempotency-key': key, 'content-type': 'application/json', prefer: 'wait=60' },
    body: JSON.stringify({ prompt: `hello cluster ${key}` }),
  }).catch((error: Error) => {
    // Say what the stack printed: a role that exited says why there.
    throw new Error(`${error.message} (${String(error.cause)}); the stack printed:\n${stack.output().slice(-6000)}`);
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { status: string; workflowId: string };
}

/**
 * Every process that belongs to this stack: each one inherits the scratch
 * ONCEFLOW_STATE_DIR from the start process (keepers, PostgreSQL, the four
 * Temporal services, the UI server, api, worker, relay), and the scratch
 * path is unique to this test.
 */
function stackProcesses(stateDir: string): { pid: number; command: string }[] {
  const found: { pid: number; command: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`ONCEFLOW_STATE_DIR=${stateDir}`)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue; // exited, not yet reaped
      found.push({ pid: Number(entry), command: readFileSync(`/proc/${entry}/cmdline`, 'latin1').replace(/\0$/, '').split('\0').join(' ') });
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return found;
}

/** Waits (up to timeoutMs) for the stack's processes to go, then SIGKILLs any left, so a failure never leaks them into the next test. */
async function processesLeftAfter(stateDir: string, timeoutMs: number): Promise<string[]> {
  await until(() => stackProcesses(stateDir).length === 0, 'every process of the stack is gone', timeoutMs).catch(() => undefined);
  const left = stackProcesses(stateDir);
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return left.map((p) => p.command);
}

const describeOnLinux = process.platform === 'linux' ? describe : describe.skip;

describe('onceflow start --temporal cluster', () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(path.join(tmpdir(), 'onceflow-start-cluster-'));
    await chmod(stateDir, 0o755);
    await mkdir(path.join(ROOT, '.onceflow', 'tools'), { recursive: true });
    await symlink(path.join(ROOT, '.onceflow', 'tools'), path.join(stateDir, 'tools'));
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  it('serves an operation on the cluster, shows it in the Web UI (pointed at the codec endpoint), and stops the roles, then the UI and the four services, then PostgreSQL on Ctrl-C', async () => {
    const codecToken = 'cluster-codec-token';
    const stack = await startStack(stateDir, { ONCEFLOW_PAYLOAD_KEYS: `k1:${'ab'.repeat(32)}`, ONCEFLOW_CODEC_TOKEN: codecToken, ONCEFLOW_CODEC_CORS_ORIGIN: '' });
    try {
      expect(stack.output()).toContain(`frontend 127.0.0.1:${stack.ports.TEMPORAL_DEV_PORT}`);
      expect(stack.output()).toContain(`temporal ui: http://localhost:${stack.ports.TEMPORAL_UI_PORT}`);
      const operation = await generate(stack, 'cluster-start');
      expect(operation.status).toBe('succeeded');

      const ui = `http://127.0.0.1:${stack.ports.TEMPORAL_UI_PORT}`;
      const page = await fetch(`${ui}/namespaces/default/workflows`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(await page.text()).toMatch(/<html[\s\S]*_app\//);
      // The UI's own API, answered by the UI server from the cluster's visibility
      // store (eventually consistent, hence the poll).
      const query = encodeURIComponent(`WorkflowId = "${operation.workflowId}"`);
      let listed: { executions?: { execution: { workflowId: string }; status: string }[] } = {};
      await until(async () => {
        const response = await fetch(`${ui}/api/v1/namespaces/default/workflows?query=${query}`);
        listed = (await response.json()) as typeof listed;
        return response.ok && (listed.executions ?? []).some((e) => e.status === 'WORKFLOW_EXECUTION_STATUS_COMPLETED');
      }, `the UI server lists workflow ${operation.workflowId} as completed`, 60_000);
      expect(listed.executions!.map((e) => e.execution.workflowId)).toEqual([operation.workflowId]);

      // The UI decodes encrypted payloads through the api's codec endpoint, from its own origin.
      const settings = (await (await fetch(`${ui}/api/v1/settings`)).json()) as { Codec: { Endpoint: string; IncludeCredentials: boolean } };
      expect(settings.Codec).toMatchObject({ Endpoint: `http://127.0.0.1:${stack.ports.PORT}/codec`, IncludeCredentials: true });
      const preflight = await fetch(`${settings.Codec.Endpoint}/decode`, { method: 'OPTIONS', headers: { origin: `http://localhost:${stack.ports.TEMPORAL_UI_PORT}` } });
      expect(preflight.headers.get('access-control-allow-origin')).toBe(`http://localhost:${stack.ports.TEMPORAL_UI_PORT}`);
      const decode = await fetch(`${settings.Codec.Endpoint}/decode`, {
        method: 'POST',
        headers: { authorization: `Bearer ${codecToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ payloads: [] }),
      });
      expect(decode.status).toBe(200);
    } finally {
      // what a terminal does on Ctrl-C: SIGINT to the foreground process group
      if (stack.child.exitCode === null) process.kill(-stack.child.pid!, 'SIGINT');
    }
    expect(await stack.exited).toBe(0);
    const output = stack.output();
    const order = ['stopped api', 'stopped worker', 'stopped gemini-offline', 'stopped temporal cluster', 'stopped postgres'].map((line) => output.indexOf(line));
    expect(order.every((index) => index >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  describeOnLinux('killed with SIGKILL', () => {
    it('leaves no Temporal service, UI server, PostgreSQL or role behind: the keepers stop them', async () => {
      const stack = await startStack(stateDir);
      let before: { pid: number; command: string }[];
      try {
        expect((await generate(stack, 'cluster-sigkill')).status).toBe('succeeded');
        before = stackProcesses(stateDir);
        const config = path.join(stateDir, 'temporal-cluster', 'config');
        const services = before.filter((p) => p.command.includes(`--config-file ${path.join(config, 'temporal.yaml')}`));
        expect(services.map((p) => p.command.split(' --service ')[1]).sort()).toEqual(['frontend', 'history', 'matching', 'worker']);
        expect(before.filter((p) => p.command.includes(`temporal-ui-server/`) && p.command.includes(path.join(config, 'ui')))).toHaveLength(1);
        expect(before.filter((p) => p.command.includes('bin/postgres') && p.command.includes(stateDir))).toHaveLength(1);
      } catch (error) {
        if (stack.child.exitCode === null) process.kill(-stack.child.pid!, 'SIGINT');
        await stack.exited;
        throw error;
      }

      stack.child.kill('SIGKILL');
      await stack.exited;
      // Generous: the roles drain first, then four services stop one by one.
      expect(await processesLeftAfter(stateDir, 180_000)).toEqual([]);
      expect(before.length).toBeGreaterThanOrEqual(9);
    });

    it('stops everything and exits non-zero, naming the service, when a Temporal service dies on its own', async () => {
      const stack = await startStack(stateDir);
      try {
        const history = stackProcesses(stateDir).find((p) => p.command.endsWith('--service history'));
        expect(history).toBeDefined();
        process.kill(history!.pid, 'SIGKILL');
        expect(await stack.exited).not.toBe(0);
      } finally {
        if (stack.child.exitCode === null) process.kill(-stack.child.pid!, 'SIGKILL');
        await stack.exited;
      }
      expect(stack.output()).toMatch(/the temporal cluster keeper exited with code 1 \(log .*temporal-cluster\.log\); stopping everything/);
      expect(readFileSync(path.join(stateDir, 'temporal-cluster.log'), 'utf8')).toContain('the Temporal history process exited on its own');
      expect(stack.output().indexOf('stopped api')).toBeGreaterThan(stack.output().indexOf('stopping everything'));
      expect(await processesLeftAfter(stateDir, 120_000)).toEqual([]);
    });
  });
});
