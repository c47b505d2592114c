/**
 * A RabbitMQ server from the distribution's package (`rabbitmq-server`, see
 * the Makefile's `broker` target) run as a plain child process with its own
 * node name, ports, data directory and Erlang cookie, as local-postgres.ts
 * runs PostgreSQL: tests and local runs never touch a system broker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import path from 'node:path';
import { LocalStackError } from './errors';

/** Where Debian's package puts the real server script (/usr/sbin/rabbitmq-server would su to the rabbitmq user). */
export const RABBITMQ_SERVER_BINARY = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface LocalRabbitmq {
  /** amqp://guest:guest@127.0.0.1:<port> (guest may log in from loopback only). */
  url: string;
  port: number;
  /** SIGTERM, then SIGKILL after 15 s; resolves when the server has exited. */
  stop(): Promise<void>;
}

export interface StartLocalRabbitmqOptions {
  /** Data, logs and cookie of this node. */
  dir: string;
  /** AMQP port. */
  port: number;
  /** Erlang distribution port (the node needs one even alone). */
  distPort: number;
  /** Default RABBITMQ_SERVER_BINARY. */
  binary?: string;
  /** How long to wait for the AMQP listener; default 90000 ms (a cold start takes about 12 s on two busy cores). */
  startTimeoutMs?: number;
}

export async function startLocalRabbitmq(options: StartLocalRabbitmqOptions): Promise<LocalRabbitmq> {
  const binary = options.binary ?? RABBITMQ_SERVER_BINARY;
  if (!existsSync(binary)) {
    throw new LocalStackError(`RabbitMQ is not installed (${binary} is missing)`, 'run `make broker`, or `apt-get install rabbitmq-server`');
  }
  await mkdir(options.dir, { recursive: true });
  const pluginsFile = path.join(options.dir, 'enabled_plugins');
  await writeFile(pluginsFile, '[].\n');
  const child = spawn(binary, [], {
    cwd: options.dir,
    env: {
      ...process.env,
      // The Erlang cookie is read from $HOME: our own, so no other node can join.
      HOME: options.dir,
      RABBITMQ_NODENAME: `onceflow-${options.port}@localhost`,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(options.port),
      RABBITMQ_DIST_PORT: String(options.distPort),
      RABBITMQ_MNESIA_BASE: path.join(options.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(options.dir, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: pluginsFile,
      RABBITMQ_CONFIG_FILE: path.join(options.dir, 'rabbitmq'),
      RABBITMQ_LOGS: path.join(options.dir, 'rabbitmq.log'),
    },
    stdio: ['ignore', 'ignore', 'ignore'],
    // Own process group: stop() signals the script, Erlang's VM and its helpers together.
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForListener(options.port, child, options.startTimeoutMs ?? 90_000);
  } catch (error) {
    signalGroup(child, 'SIGKILL');
    throw error;
  }
  return {
    url: `amqp://guest:guest@127.0.0.1:${options.port}`,
    port: options.port,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup(child, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

async function waitForListener(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new LocalStackError(`rabbitmq-server exited (${child.exitCode}) before listening on ${port}`, 'see rabbitmq.log in its directory');
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new LocalStackError(`rabbitmq-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`, 'see rabbitmq.log in its directory');
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
