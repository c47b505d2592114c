import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import pg from 'pg';
import { assertPortFree, findFreePort } from '../../dev/ports';
import { testInfra } from '../helpers/infra';
import { descendantsOf, survivors, waitUntilGone, type ProcessEntry } from './process-tree';

const ROOT = path.resolve(__dirname, '../..');
const PLANTED_API_KEY = `planted-api-key-${Math.random().toString(36).slice(2)}`;
const PLANTED_PROMPT = `planted prompt ${Math.random().toString(36).slice(2)}`;

interface Stack {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * `onceflow start` as a user runs it (make start), on free ports and a scratch
 * state directory. It gets a process group of its own, as a shell gives each
 * job, so `ctrlC` can do what a terminal does: signal the whole group.
 */
function startStack(env: NodeJS.ProcessEnv): Stack {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** What a terminal does on Ctrl-C: SIGINT to every process of the foreground group, not only to its leader. */
function ctrlC(stack: Stack): void {
  process.kill(-stack.child.pid!, 'SIGINT');
}

/** Everything the stack started, checked to hold the parts whose survival we test. */
function processesOf(stack: Stack): ProcessEntry[] {
  const tree = descendantsOf(stack.child.pid!);
  const names = new Set(tree.map((p) => p.comm));
  // a snapshot without these would make "nothing survived" prove nothing
  for (const name of ['postgres', 'temporal', 'node', 'beam.smp']) expect(names).toContain(name);
  return tree;
}

async function waitFor(stack: Stack, pattern: RegExp, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(stack.output())) {
    if (stack.child.exitCode !== null) throw new Error(`stack exited early:\n${stack.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${stack.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The JSON log lines a role printed (the supervisor prefixes each with `[role]`). */
function logLinesOf(output: string, role: string): Record<string, unknown>[] {
  const prefix = `[${role}]`;
  return output
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length).trim())
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * One grep follows a request: the api's line for the key names the
 * correlation id next to the request id, tenant, workflow and run; the
 * worker's Gemini call and the relay's delivery carry the same id, with the
 * attempt, the model and the outbox event id.
 */
function expectOneCorrelationIdAcrossProcesses(output: string, idempotencyKey: string, deliveredEventId: string): void {
  const request = logLinesOf(output, 'api').find((line) => line.idempotencyKey === idempotencyKey && line.outcome === 'new');
  expect(request).toMatchObject({ correlationId: expect.any(String), reqId: expect.anything(), tenant: 'demo', workflowId: expect.any(String) });
  const correlationId = request!.correlationId;
  const call = logLinesOf(output, 'worker').find((line) => line.correlationId === correlationId && line.outcome === 'succeeded');
  expect(call).toMatchObject({ workflowId: request!.workflowId, runId: expect.any(String), model: expect.any(String), attempt: 1, geminiResponseId: expect.any(String) });
  const delivery = logLinesOf(output, 'relay').find((line) => line.correlationId === correlationId);
  expect(delivery).toMatchObject({ eventId: deliveredEventId, outcome: 'delivered' });
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
      ONCEFLOW_EMBEDDED_RABBITMQ_PORT: String(await findFreePort()),
      ONCEFLOW_EMBEDDED_RABBITMQ_DIST_PORT: String(await findFreePort()),
      CONSUMER_METRICS_PORT: String(await findFreePort()),
      RABBITMQ_URL: '',
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
  const started: ProcessEntry[] = [];
  afterEach(async () => {
    // a failed assertion must not leave a stack holding the ports
    for (const stack of stacks.splice(0)) {
      if (stack.child.exitCode === null && stack.child.signalCode === null) ctrlC(stack);
      const timer = setTimeout(() => process.kill(-stack.child.pid!, 'SIGKILL'), 60_000);
      await stack.exited;
      clearTimeout(timer);
    }
    for (const entry of survivors(started.splice(0))) process.kill(entry.pid, 'SIGKILL');
  });
  afterAll(() => rm(stateDir, { recursive: true, force: true }));

  it('starts every part, says where each listens, stops on Ctrl-C to its process group in order (api first, database last) leaving no process behind, finds the first run’s data on a second start, follows one request by one correlation id through api, worker and relay logs, and never logs a key or a prompt', async () => {
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

    // The queue door, as the README's worked example uses it: a message to the stack's own RabbitMQ is an operation.
    expect(out).toContain(`queue: consumer reads onceflow.operations on amqp://guest:***@127.0.0.1:${env.ONCEFLOW_EMBEDDED_RABBITMQ_PORT} [embedded rabbitmq`);
    const broker = await amqp.connect(`amqp://guest:guest@127.0.0.1:${env.ONCEFLOW_EMBEDDED_RABBITMQ_PORT}`);
    const channel = await broker.createConfirmChannel();
    await channel.assertQueue('onceflow.operations', { durable: true });
    channel.sendToQueue('onceflow.operations', Buffer.from(JSON.stringify({ operationType: 'generate-content', input: { prompt: PLANTED_PROMPT } })), {
      persistent: true,
      headers: { 'onceflow-tenant': 'demo', 'idempotency-key': 'from-the-queue' },
    });
    await channel.waitForConfirms();
    await broker.close();
    let fromQueue: { status?: string } = {};
    for (let tries = 0; tries < 300 && fromQueue.status !== 'succeeded'; tries++) {
      if (tries > 0) await new Promise((r) => setTimeout(r, 200));
      const read = await fetch(`${api}/v1/operations/generate-content/from-the-queue`, { headers: { authorization: `Bearer ${PLANTED_API_KEY}` } });
      if (read.status === 200) fromQueue = (await read.json()) as { status?: string };
    }
    expect(fromQueue.status).toBe('succeeded');

    // A subscriber, so the relay delivers the operation's event and logs it.
    const received: string[] = [];
    const subscriber = http.createServer((request, response) => {
      request.resume().on('end', () => {
        received.push(String(request.headers['webhook-id']));
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => subscriber.listen(0, '127.0.0.1', resolve));
    const subscribed = await fetch(`${api}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PLANTED_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${(subscriber.address() as net.AddressInfo).port}/hooks`, eventTypes: ['operation.succeeded'] }),
    });
    expect(subscribed.status).toBe(201);

    const created = await fetch(`${api}/v1/operations/generate-content`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PLANTED_API_KEY}`, 'idempotency-key': 'survives-restart', 'content-type': 'application/json', prefer: 'wait=30' },
      body: JSON.stringify({ prompt: PLANTED_PROMPT }),
    });
    expect(created.status).toBe(200);
    const resource = (await created.json()) as { status: string; result: { text: string } };
    expect(resource.result.text).toContain('[offline model]');
    const deadline = Date.now() + 30_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    subscriber.close();
    expect(received).toHaveLength(1);
    // The worker's second metrics port is the SDK's own telemetry (Core's
    // Prometheus exporter). The workflow's last task may finish just after the
    // answer (which the completing activity makes visible), so poll for it.
    const workflowCompleted = /^temporal_workflow_completed\{[^}]*\} [1-9]/m;
    let sdkMetrics = '';
    for (let tries = 0; tries < 50 && !workflowCompleted.test(sdkMetrics); tries++) {
      if (tries > 0) await new Promise((r) => setTimeout(r, 200));
      sdkMetrics = await (await fetch(`http://127.0.0.1:${env.WORKER_SDK_METRICS_PORT}/metrics`)).text();
    }
    expect(sdkMetrics).toMatch(workflowCompleted);
    expect(sdkMetrics).toMatch(/^temporal_activity_execution_latency/m);

    const firstTree = processesOf(first);
    started.push(...firstTree);
    // Watch the order from outside: a connection of our own to the stack's
    // PostgreSQL, the Temporal UI (served by the dev server), and the roles' pids.
    const db = new pg.Client({ connectionString: `postgres://onceflow:onceflow@127.0.0.1:${env.ONCEFLOW_EMBEDDED_PG_PORT}/onceflow` });
    await db.connect();
    let databaseLostAt = Infinity;
    const lost = () => (databaseLostAt = Math.min(databaseLostAt, Date.now()));
    db.on('error', lost).on('end', lost);
    let temporalAnsweredAt = 0;
    const temporalWatch = (async () => {
      while (first.child.exitCode === null) {
        const answered = await fetch(`http://127.0.0.1:${env.TEMPORAL_UI_PORT}/`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
        if (answered) temporalAnsweredAt = Date.now();
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const goneAt = async (script: string) => {
      const role = firstTree.filter((p) => p.args.includes(script));
      expect(role).toHaveLength(1);
      while (survivors(role).length > 0) await new Promise((r) => setTimeout(r, 25));
      return Date.now();
    };
    ctrlC(first);
    const [apiGoneAt, workerGoneAt, relayGoneAt] = await Promise.all(['src/http/server.ts', 'src/worker/main.ts', 'src/relay/main.ts', 'src/consumer/main.ts'].map(goneAt));
    expect(await first.exited).toBe(0);
    await temporalWatch;
    expect(first.output()).toContain('stopped.');
    // The Ctrl-C reached the supervisor, not the servers: Temporal still
    // answered after the api had gone, and PostgreSQL kept our connection
    // until worker and relay had drained.
    expect(temporalAnsweredAt).toBeGreaterThan(apiGoneAt!);
    expect(databaseLostAt).toBeGreaterThan(Math.max(workerGoneAt!, relayGoneAt!));
    expect(databaseLostAt).toBeLessThan(Infinity);
    // Every part drained cleanly (a database gone under the worker made it
    // exit 1), and in order: api, worker and relay, the model, Temporal, PostgreSQL.
    const stopLines = first.output().match(/^ {2}stopped .*$/gm) ?? [];
    expect(stopLines.map((line) => line.trim())).toEqual([
      expect.stringMatching(/^stopped (api|consumer) \(exit 0\)$/),
      expect.stringMatching(/^stopped (api|consumer) \(exit 0\)$/),
      expect.stringMatching(/^stopped (worker|relay) \(exit 0\)$/),
      expect.stringMatching(/^stopped (worker|relay) \(exit 0\)$/),
      'stopped gemini-offline (exit 0)',
      'stopped rabbitmq (exit 0)',
      'stopped temporal (exit 0)',
      'stopped postgres (exit 0)',
    ]);
    expect(survivors(firstTree)).toEqual([]);

    const second = startStack(env);
    stacks.push(second);
    let secondExit: number | null = null;
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
      // No assertion here: it would hide the error that got us here.
      ctrlC(second);
      secondExit = await second.exited;
    }
    expect(secondExit).toBe(0);
    // Every process logged at debug level through a full run, and still:
    const logs = first.output() + second.output();
    expectOneCorrelationIdAcrossProcesses(first.output(), 'survives-restart', received[0]!);
    expect(logs).not.toContain(PLANTED_API_KEY);
    expect(logs).not.toContain(PLANTED_PROMPT);
  }, 400_000);

  it('leaves no PostgreSQL, Temporal or Node process behind when the supervisor itself is SIGKILLed', async () => {
    const stack = startStack(env);
    stacks.push(stack);
    await waitFor(stack, /onceflow is up/);
    const tree = processesOf(stack);
    started.push(...tree);
    stack.child.kill('SIGKILL');
    await stack.exited;
    // Bounded: the roles notice within a second or two, drain, and the keepers stop their servers after them.
    expect(await waitUntilGone(tree, 90_000)).toEqual([]);
  }, 300_000);

  it('starts everything but the queue door when its RabbitMQ cannot run here (its port taken), and says so', async () => {
    const port = Number(env.ONCEFLOW_EMBEDDED_RABBITMQ_PORT);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const stack = startStack({ ...env, LOG_LEVEL: 'info' });
      stacks.push(stack);
      await waitFor(stack, /onceflow is up/);
      expect(stack.output()).toMatch(new RegExp(`queue: OFF, port ${port} \\(ONCEFLOW_EMBEDDED_RABBITMQ_PORT\\) is taken.*; everything else runs`));
      const tree = descendantsOf(stack.child.pid!);
      started.push(...tree);
      expect(tree.filter((p) => p.args.includes('src/consumer/main.ts') || p.comm === 'beam.smp')).toEqual([]);
      expect((await fetch(`http://127.0.0.1:${env.PORT}/readyz`)).status).toBe(200);
      ctrlC(stack);
      expect(await stack.exited).toBe(0);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 300_000);

  // WORKER_SDK_METRICS_PORT is bound inside the worker by Temporal's Core; unchecked, a taken
  // one surfaced only after everything had started, as the worker dying.
  it.each(['PORT', 'WORKER_SDK_METRICS_PORT'])('refuses a taken %s with one line naming the variable, and leaves nothing running', async (variable) => {
    const port = Number(env[variable]);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const stack = startStack({ ...env, LOG_LEVEL: 'info' }); // debug would add the stack trace on purpose
      stacks.push(stack);
      expect(await stack.exited).toBe(1);
      expect(stack.output()).toMatch(new RegExp(`onceflow start: port ${port} is already in use .* — stop whatever listens there, or set ${variable} to a free port`));
      expect(stack.output()).not.toMatch(/\n\s+at /);
      // refused before anything started: the database and Temporal ports were never taken
      await assertPortFree(Number(env.ONCEFLOW_EMBEDDED_PG_PORT), 'ONCEFLOW_EMBEDDED_PG_PORT');
      await assertPortFree(Number(env.TEMPORAL_DEV_PORT), 'TEMPORAL_DEV_PORT');
      expect(stack.output()).not.toContain('postgres:');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 120_000);
});
