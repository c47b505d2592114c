/**
 * The fault scenarios. Each injects a real fault into the running stack while
 * clients load it, then checks the invariants for the keys it used.
 */
import { randomUUID } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { ROOT, BENCH_TENANT } from '../bench/lib/stack';
import { sleep, until } from '../bench/lib/stats';
import { keepRabbitmq } from '../dev/keeper';
import { findFreePort } from '../dev/ports';
import { geminiControl, insist, pool, type FaultStack, type KeyOutcome } from './lib/harness';
import { checkInvariants } from './lib/invariants';
import { clientCounts, insistUnderFault, merge, type ScenarioResult, type ScenarioSettings } from './lib/load';

const body = (key: string) => ({ prompt: `fault suite: ${key}` });

/** 1. 1,000 concurrent repeats of 50 keys per round while the worker is SIGKILLed and restarted every few seconds. */
export async function workerKills(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  const targetKills = settings.ci ? 3 : 20;
  await geminiControl(stack, 'reset');
  let kills = 0;
  let stop = false;
  const killer = (async () => {
    while (!stop && kills < targetKills) {
      await sleep(500 + Math.random() * 2500);
      stack.processes.worker!.kill('SIGKILL');
      await stack.processes.worker!.exited;
      kills++;
      stack.log(`  worker SIGKILL ${kills}/${targetKills}`);
      await stack.startRole('worker');
    }
  })();
  const keys: string[] = [];
  const outcomes: KeyOutcome[] = [];
  let round = 0;
  while (kills < targetKills || round === 0) {
    const roundKeys = Array.from({ length: 50 }, (_, i) => `wk-${round}-${i}-${randomUUID().slice(0, 6)}`);
    keys.push(...roundKeys);
    const requests = Array.from({ length: 1000 }, (_, i) => roundKeys[i % 50]!);
    outcomes.push(...(await pool(requests, 1000, (key) => insist(stack.apiUrl, key, body(key), { waitSeconds: 5 }))));
    round++;
    stack.log(`  round ${round}: 1,000 requests over 50 keys answered; ${kills} kills so far`);
  }
  stop = true;
  await killer;
  const invariants = await checkInvariants(stack, keys);
  const client = clientCounts(outcomes);
  client.counts['worker SIGKILLs'] = kills;
  return merge('worker SIGKILL under 1,000 concurrent repeats of 50 keys', `${kills} worker SIGKILLs, restarted each time`, startedAt, client, invariants);
}

/** 2. The API killed at random points while clients insist on their keys. */
export async function apiKills(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  const targetKills = settings.ci ? 3 : 10;
  const keys = Array.from({ length: settings.ci ? 120 : 400 }, (_, i) => `ak-${i}-${randomUUID().slice(0, 6)}`);
  const { outcomes, injected: kills } = await insistUnderFault(stack, {
    keys, body, concurrency: 20, times: targetKills,
    inject: async (n) => {
      await sleep(300 + Math.random() * 1500);
      stack.processes.api!.kill('SIGKILL');
      await stack.processes.api!.exited;
      stack.log(`  api SIGKILL ${n}/${targetKills}`);
      await stack.startRole('api');
    },
  });
  const client = clientCounts(outcomes);
  client.counts['api SIGKILLs'] = kills;
  return merge('API killed mid-request, clients retrying the same keys', `${kills} api SIGKILLs at random points`, startedAt, client, await checkInvariants(stack, keys));
}

/** 3. PostgreSQL stopped and started during load. */
export async function postgresRestarts(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  const restarts = settings.ci ? 1 : 3;
  const keys = Array.from({ length: settings.ci ? 60 : 200 }, (_, i) => `pg-${i}-${randomUUID().slice(0, 6)}`);
  const { outcomes, injected: count } = await insistUnderFault(stack, {
    keys, body, concurrency: 10, staggerMs: 4000, times: restarts,
    inject: async (n) => {
      await sleep(1500 + Math.random() * 1500);
      await stack.infra.postgres.stop();
      stack.log(`  PostgreSQL stopped (${n}/${restarts})`);
      await sleep(3000);
      await stack.infra.postgres.start();
      stack.log('  PostgreSQL started');
    },
  });
  const client = clientCounts(outcomes);
  client.counts['PostgreSQL restarts'] = count;
  return merge('PostgreSQL stopped and started during load', `${count} PostgreSQL stops of 3 s`, startedAt, client, await checkInvariants(stack, keys));
}

/** 4. The Temporal dev server stopped and started (state file kept) during load. */
export async function temporalRestarts(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  const restarts = settings.ci ? 1 : 2;
  const keys = Array.from({ length: settings.ci ? 60 : 200 }, (_, i) => `tp-${i}-${randomUUID().slice(0, 6)}`);
  const { outcomes, injected: count } = await insistUnderFault(stack, {
    keys, body, concurrency: 10, staggerMs: 4000, times: restarts,
    inject: async (n) => {
      await sleep(1500 + Math.random() * 1500);
      await stack.infra.temporal.stop();
      stack.log(`  Temporal dev server stopped (${n}/${restarts})`);
      await sleep(3000);
      await stack.infra.temporal.start();
      stack.log('  Temporal dev server started (same state file)');
    },
  });
  const client = clientCounts(outcomes);
  client.counts['Temporal restarts'] = count;
  return merge('Temporal dev server stopped and started during load', `${count} Temporal stops of 3 s, SQLite state kept`, startedAt, client, await checkInvariants(stack, keys));
}

/** 5. The relay SIGKILLed after the subscriber applied an event and before the relay recorded the acknowledgement. */
export async function relayKills(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  const repetitions = settings.ci ? 2 : 8;
  const keys: string[] = [];
  const outcomes: KeyOutcome[] = [];
  let kills = 0;
  for (let i = 0; i < repetitions; i++) {
    const key = `rk-${i}-${randomUUID().slice(0, 6)}`;
    keys.push(key);
    const hold = stack.consumer.holdNext();
    outcomes.push(await insist(stack.apiUrl, key, body(key), { waitSeconds: 10 }));
    await Promise.race([hold.arrived, sleep(30_000).then(() => Promise.reject(new Error('the event never reached the consumer')))]);
    // The effect is committed in the consumer's inbox; the relay is waiting for the answer.
    stack.processes.relay!.kill('SIGKILL');
    await stack.processes.relay!.exited;
    kills++;
    hold.released();
    stack.log(`  relay SIGKILL ${kills}/${repetitions} between delivery and acknowledgement`);
    await stack.startRole('relay');
  }
  const client = clientCounts(outcomes);
  client.counts['relay SIGKILLs'] = kills;
  const invariants = await checkInvariants(stack, keys);
  if (invariants.counts.redeliveries! < kills) invariants.violations.push(`expected at least ${kills} redeliveries after ${kills} kills, saw ${invariants.counts.redeliveries}`);
  return merge('relay killed between delivery and acknowledgement', `${kills} relay SIGKILLs while the subscriber held its answer`, startedAt, client, invariants);
}

/** 6. Gemini answering 429/503 30% of the time and dropping 10% of connections after doing the work. */
export async function geminiChaos(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  await geminiControl(stack, 'chaos', { failureRate: 0.3, dropRate: 0.1 });
  const keys = Array.from({ length: settings.ci ? 40 : 150 }, (_, i) => `gc-${i}-${randomUUID().slice(0, 6)}`);
  const outcomes = await pool(keys, 10, (key) => insist(stack.apiUrl, key, body(key), { waitSeconds: 30 }));
  const invariants = await checkInvariants(stack, keys);
  await geminiControl(stack, 'chaos', { failureRate: 0, dropRate: 0 });
  const calls = ((await geminiControl(stack, 'calls')) as { calls: { outcome: string }[] }).calls;
  const client = clientCounts(outcomes);
  client.counts['gemini errors injected'] = calls.filter((c) => c.outcome === 'error').length;
  client.counts['gemini drops injected'] = calls.filter((c) => c.outcome === 'drop').length;
  return merge('Gemini 429/503 30%, dropped answers 10%', 'chaos on the offline Gemini server', startedAt, client, invariants);
}

/** Runs the schemathesis CLI; resolves with its exit code and whole output. */
function runSchemathesis(args: string[]): Promise<{ code: number; output: string }> {
  const st = path.join(ROOT, '.onceflow/tools/schemathesis-venv/bin/st');
  return new Promise((resolve) => {
    // Its working files (.schemathesis/, reports) land in the ignored results directory.
    const child = spawn(st, args, { cwd: path.join(ROOT, 'faults/results'), env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    child.on('error', (error) => resolve({ code: 127, output: `${text}\n${error.message}` }));
    child.on('exit', (c) => resolve({ code: c ?? 1, output: text }));
  });
}

/** "❌ ST105 Undocumented Content-Type: 9" lines of schemathesis's summary. */
function failureKinds(output: string): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const match of output.matchAll(/❌ (ST\d+ [^:\n]+): (\d+)/g)) kinds[match[1]!] = Number(match[2]);
  return kinds;
}

/**
 * 7. schemathesis against /openapi.json. The gating run checks the issue's
 * invariants (no 5xx, every response body matches its documented schema); a
 * second, smaller run reports documentation drift (undocumented status codes
 * and content types) as counts without failing the suite.
 */
export async function schemathesis(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  const maxExamples = settings.ci ? 15 : 60;
  // One worker: with two, hypothesis parses lambda sources from two threads and
  // CPython 3.11's ast module fails under that ("AST constructor recursion depth
  // mismatch"), so schemathesis dropped one operation per run with a runtime
  // error. One worker is also faster here (9.5 s against 13 s in CI mode).
  const common = ['run', `${stack.apiUrl}/openapi.json`, '-H', `Authorization: Bearer ${BENCH_TENANT.apiKey}`, '--workers', '1', '--suppress-health-check', 'all', '--request-timeout', '30'];
  const gating = await runSchemathesis([...common, '--checks', 'not_a_server_error,response_schema_conformance', '--max-examples', String(maxExamples)]);
  const drift = await runSchemathesis([...common, '--checks', 'status_code_conformance,content_type_conformance', '--max-examples', '5']);
  // schemathesis creates subscriptions to made-up public hosts, which no machine
  // here can reach: every later event would also owe them a delivery that never
  // completes, and a scenario after this one would count those as unacknowledged.
  await stack.infra.pool.query('DELETE FROM subscriptions WHERE tenant_id = $1 AND url <> $2', [BENCH_TENANT.tenantId, stack.consumer.url]);
  await writeFile(path.join(ROOT, 'faults/results/schemathesis.txt'), `${gating.output}\n\n=== documentation drift run ===\n\n${drift.output}`);
  const tail = gating.output.trim().split('\n').slice(-12).join('\n');
  stack.log(`  schemathesis (no 5xx, response schemas) exited ${gating.code}:\n${tail.split('\n').map((l) => `    ${l}`).join('\n')}`);
  const failures = failureKinds(gating.output);
  const driftKinds = failureKinds(drift.output);
  const failureCount = Object.values(failures).reduce((a, b) => a + b, 0);
  const toolErrors = Number(/Runtime Error: (\d+)/.exec(gating.output)?.[1] ?? 0);
  const testCases = Number(/(\d+) generated/i.exec(gating.output)?.[1] ?? Number.NaN);
  const violations: string[] = [];
  if (gating.code === 127) violations.push('schemathesis is not installed (see faults/README.md)');
  else if (failureCount > 0) violations.push(`schemathesis: ${Object.entries(failures).map(([k, v]) => `${k} ×${v}`).join(', ')} (details in faults/results/schemathesis.txt)`);
  // A runtime error means schemathesis gave up on an operation: its invariants went unchecked.
  else if (toolErrors > 0) violations.push(`schemathesis could not test ${toolErrors} operation(s): runtime errors (details in faults/results/schemathesis.txt)`);
  else if (gating.code !== 0) violations.push(`schemathesis exited ${gating.code}: ${tail.split('\n').slice(-2).join(' | ')}`);
  return {
    name: 'schemathesis against /openapi.json',
    injected: `up to ${maxExamples} generated examples per operation`,
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    counts: {
      'test cases': testCases,
      '5xx or schema failures': failureCount,
      'operations schemathesis could not test': toolErrors,
      ...Object.fromEntries(Object.entries(driftKinds).map(([k, v]) => [`doc drift: ${k}`, v])),
    },
    violations,
  };
}

/**
 * 8. The queue door: messages published to a RabbitMQ of the scenario's own,
 * read by real consumer processes that are SIGKILLed again and again while
 * they hold received, unacknowledged messages. Every message must become
 * exactly one operation (none lost, none doubled), and the consumer that
 * picks up after a kill counts RabbitMQ's redeliveries.
 */
export async function queueConsumerKills(stack: FaultStack, settings: ScenarioSettings): Promise<ScenarioResult> {
  const startedAt = Date.now();
  await geminiControl(stack, 'reset');
  const targetKills = settings.ci ? 3 : 10;
  const keys = Array.from({ length: settings.ci ? 90 : 300 }, (_, i) => `qk-${i}-${randomUUID().slice(0, 6)}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'onceflow-faults-rabbitmq-'));
  // Under a keeper like the suite's other servers, so a killed suite leaves no broker behind.
  const rabbitKeeper = await keepRabbitmq({ dir: path.join(dir, 'server'), port: await findFreePort(), distPort: await findFreePort() }, { logFile: path.join(dir, 'keeper.log') });
  const rabbit = { url: rabbitKeeper.info.url, stop: () => rabbitKeeper.stop() };
  const queue = `faults-${randomUUID().slice(0, 8)}`;
  const running: ChildProcess[] = [];
  const startConsumer = async () => {
    const metricsPort = await findFreePort();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/consumer/main.ts')], {
      cwd: ROOT,
      env: { ...stack.env, RABBITMQ_URL: rabbit.url, QUEUE_NAME: queue, QUEUE_DEAD_LETTER_NAME: `${queue}.dead-letter`, QUEUE_PREFETCH: '32', CONSUMER_METRICS_PORT: String(metricsPort), LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    running.push(child);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    await until(async () => (await fetch(metricsUrl).then((r) => r.ok, () => false)), 'the consumer serving metrics', 120_000, 200);
    return { child, metricsUrl };
  };
  const reserved = async () =>
    (await stack.infra.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM operations WHERE tenant_id = $1 AND idempotency_key = ANY($2)', [BENCH_TENANT.tenantId, keys])).rows[0]!.n;
  let kills = 0;
  let redeliveries = 0;
  let deadLetters = 0;
  try {
    const connection = await amqp.connect(rabbit.url);
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    for (const key of keys) {
      channel.sendToQueue(queue, Buffer.from(JSON.stringify({ operationType: 'generate-content', input: body(key) })), {
        persistent: true,
        headers: { 'onceflow-tenant': BENCH_TENANT.tenantId, 'idempotency-key': key },
      });
    }
    await channel.waitForConfirms();
    await connection.close();
    while (kills < targetKills) {
      const consumer = await startConsumer();
      const before = await reserved();
      await until(async () => (await reserved()) > before + 3 || before === keys.length, 'the consumer making progress', 120_000, 20);
      consumer.child.kill('SIGKILL');
      await new Promise((resolve) => (consumer.child.exitCode === null && consumer.child.signalCode === null ? consumer.child.once('exit', resolve) : resolve(undefined)));
      kills++;
      stack.log(`  consumer SIGKILL ${kills}/${targetKills} (${await reserved()}/${keys.length} messages reserved)`);
    }
    const last = await startConsumer();
    await until(async () => (await reserved()) === keys.length, 'every message reserved', 180_000, 500).catch(() => undefined);
    const metric = async (name: string) => {
      const text = await (await fetch(last.metricsUrl)).text();
      return text.split('\n').filter((line) => line.startsWith(name)).reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    };
    redeliveries = await metric('onceflow_queue_redeliveries_total');
    deadLetters = await metric('onceflow_queue_dead_letters_total');
  } finally {
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rabbit.stop();
  }
  const lost = keys.length - (await reserved());
  const invariants = await checkInvariants(stack, keys);
  return {
    name: 'queue consumer SIGKILLed between receive and ack under load',
    injected: `${kills} consumer SIGKILLs with up to 32 unacknowledged messages in hand`,
    durationSeconds: Math.round((Date.now() - startedAt) / 1000),
    counts: { messages: keys.length, 'consumer SIGKILLs': kills, 'redeliveries counted by the last consumer': redeliveries, 'dead letters': deadLetters, 'messages lost': lost, ...invariants.counts },
    violations: [
      ...(lost > 0 ? [`${lost} messages never became an operation`] : []),
      ...(deadLetters > 0 ? [`${deadLetters} valid messages were dead-lettered`] : []),
      ...invariants.violations,
    ],
  };
}

export const scenarios = {
  'worker-kill': workerKills,
  'api-kill': apiKills,
  'postgres-restart': postgresRestarts,
  'temporal-restart': temporalRestarts,
  'relay-kill': relayKills,
  'gemini-chaos': geminiChaos,
  'queue-consumer-kill': queueConsumerKills,
  // Last: a fuzzer changes the stack's state in ways no later scenario should inherit.
  schemathesis,
} as const;

