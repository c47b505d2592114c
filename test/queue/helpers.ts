import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import amqp from 'amqplib';
import { findFreePort } from '../../dev/ports';
import { keepRabbitmq } from '../../dev/keeper';
import { testInfra } from '../helpers/infra';

const ROOT = path.resolve(__dirname, '../..');

export interface TestRabbitmq {
  url: string;
  stop(): Promise<void>;
}

/** A RabbitMQ of this test file's own, on free ports, in the run's state directory; under a keeper, so a killed jest leaves it not running. */
export async function startTestRabbitmq(): Promise<TestRabbitmq> {
  const dir = path.join(testInfra().stateDir, `rabbitmq-${randomBytes(4).toString('hex')}`);
  const keeper = await keepRabbitmq({ dir, port: await findFreePort(), distPort: await findFreePort() }, { logFile: `${dir}.log` });
  return { url: keeper.info.url, stop: () => keeper.stop() };
}

export interface ConsumerProcess {
  metricsUrl: string;
  output(): string;
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** A real consumer process (`node --import tsx src/consumer/main.ts`), resolved once it consumes. */
export async function startConsumerProcess(options: { rabbitmqUrl: string; taskQueue: string; queue: string; env?: NodeJS.ProcessEnv }): Promise<ConsumerProcess> {
  const infra = testInfra();
  const metricsPort = await findFreePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/consumer/main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: infra.databaseUrl,
      TEMPORAL_ADDRESS: infra.temporalAddress,
      TEMPORAL_NAMESPACE: infra.temporalNamespace,
      TEMPORAL_TASK_QUEUE: options.taskQueue,
      RABBITMQ_URL: options.rabbitmqUrl,
      QUEUE_NAME: options.queue,
      QUEUE_DEAD_LETTER_NAME: `${options.queue}.dead-letter`,
      CONSUMER_METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const waitForOutput = async (pattern: RegExp, timeoutMs = 90_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(output)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`consumer exited before ${pattern}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const consumer: ConsumerProcess = {
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    output: () => output,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitForOutput,
  };
  await waitForOutput(/consumer consuming/);
  return consumer;
}

/** Publishes persistent messages with publisher confirms, as a careful producer does. */
export async function publishMessages(url: string, queue: string, messages: { body: unknown; headers: Record<string, string> }[]): Promise<void> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    for (const message of messages) {
      channel.sendToQueue(queue, Buffer.from(typeof message.body === 'string' ? message.body : JSON.stringify(message.body)), { persistent: true, headers: message.headers });
    }
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

/** Takes every message off a queue (the dead letters, in tests). */
export async function drainQueue(url: string, queue: string): Promise<amqp.GetMessage[]> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: true });
    const taken: amqp.GetMessage[] = [];
    for (;;) {
      const message = await channel.get(queue, { noAck: true });
      if (!message) return taken;
      taken.push(message);
    }
  } finally {
    await connection.close();
  }
}

/** The value of one Prometheus sample (summed over series matching `labels`), 0 when absent. */
export async function metricValue(metricsUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([label, value]) => line.includes(`${label}="${value}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
