/**
 * The fault suite's stack: real PostgreSQL, a Temporal dev server with a
 * state file (so it survives a stop and start), the offline Gemini server,
 * api, worker and relay as processes, and the example consumer subscribed to
 * every event of the suite's tenant. Scenarios restart pieces of it.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { secretBoxFromConfig } from '../../src/crypto/secret-box';
import { createPool, type Pool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import type { Role } from '../../dev/supervisor';
import { createSubscription } from '../../src/outbox/subscriptions';
import { connectTemporalClient } from '../../src/temporal/client';
import { provisionBenchTenant, roleEnv, startInfra, startRole, waitForHttp, type Infra, type ManagedProcess, BENCH_TENANT } from '../../bench/lib/stack';
import { sleep } from '../../bench/lib/stats';

export interface FaultStack {
  infra: Infra;
  env: NodeJS.ProcessEnv;
  apiUrl: string;
  geminiUrl: string;
  processes: Partial<Record<Role, ManagedProcess>>;
  consumer: ExampleConsumer;
  consumerName: string;
  consumerPool: Pool;
  temporal: Client;
  log: (line: string) => void;
  /** Starts (or restarts after a kill) a role and waits until it serves. */
  startRole(role: Role): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

/** `temporal: 'cluster'` runs the stack on a Temporal cluster (faults/cluster.ts); default the dev server with a state file. */
export async function startFaultStack(log: (line: string) => void, options: { temporal?: 'dev' | 'cluster' } = {}): Promise<FaultStack> {
  const infra = await startInfra({ log, temporalStateFile: true, eagerWorkflowStart: false, temporal: options.temporal });
  await provisionBenchTenant(infra.pool);
  const geminiPort = await findFreePort();
  const apiPort = await findFreePort();
  const geminiUrl = `http://127.0.0.1:${geminiPort}`;
  const env = await roleEnv({
    infra,
    taskQueue: 'onceflow',
    geminiBaseUrl: geminiUrl,
    extra: {
      PORT: String(apiPort),
      GEMINI_OFFLINE_PORT: String(geminiPort),
      // Bounded redelivery timing, so the suite's waits stay short; the
      // guarantees do not depend on these values.
      RELAY_RETRY_BASE_MS: '200',
      RELAY_RETRY_CAP_MS: '5000',
      RELAY_DELIVERY_TIMEOUT_MS: '2000',
      RELAY_POLL_INTERVAL_MS: '500',
    },
  });
  const processes: FaultStack['processes'] = {};
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const readiness: Record<Role, string> = {
    'gemini-offline': `${geminiUrl}/__control/health`,
    worker: `http://127.0.0.1:${env.WORKER_METRICS_PORT}/metrics`,
    relay: `http://127.0.0.1:${env.RELAY_METRICS_PORT}/metrics`,
    api: `${apiUrl}/readyz`,
    // The suite runs its consumers itself (queue-consumer-kill); this is where one would answer.
    consumer: `http://127.0.0.1:${env.CONSUMER_METRICS_PORT ?? 9468}/metrics`,
  };
  const start = async (role: Role) => {
    const previous = processes[role];
    if (previous?.alive()) await previous.stop(5_000);
    const process = startRole(role, env);
    processes[role] = process;
    await waitForHttp(readiness[role], 180_000, process);
    return process;
  };
  await start('gemini-offline');
  await Promise.all([start('worker'), start('relay'), start('api')]);

  const consumerPool = createPool({ connectionString: infra.databaseUrl, max: 10, applicationName: 'onceflow-faults-consumer' });
  const subscription = await createSubscription(infra.pool, secretBoxFromConfig({}), { tenantId: BENCH_TENANT.tenantId, url: 'http://127.0.0.1:9/unused', eventTypes: ['*'] });
  const consumerName = `faults-${randomUUID().slice(0, 6)}`;
  const consumer = await startExampleConsumer({ pool: consumerPool, secret: subscription.secret, consumer: consumerName });
  await infra.pool.query('UPDATE subscriptions SET url = $1 WHERE subscription_id = $2', [consumer.url, subscription.id]);
  const temporal = await connectTemporalClient({ address: infra.temporal.address, namespace: infra.temporal.namespace });

  return {
    infra, env, apiUrl, geminiUrl, processes, consumer, consumerName, consumerPool, temporal, log,
    startRole: start,
    stop: async () => {
      for (const role of ['api', 'relay', 'worker', 'gemini-offline'] as const) await processes[role]?.stop(5_000).catch(() => undefined);
      await consumer.close().catch(() => undefined);
      await consumerPool.end().catch(() => undefined);
      await temporal.connection.close().catch(() => undefined);
      await infra.stop();
    },
  };
}

export async function geminiControl(stack: FaultStack, command: string, body?: unknown): Promise<any> {
  const response = await fetch(`${stack.geminiUrl}/__control/${command}`, {
    method: body === undefined && command === 'calls' ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined && command === 'calls' ? undefined : JSON.stringify(body ?? {}),
  });
  if (!response.ok) throw new Error(`gemini control ${command}: HTTP ${response.status}`);
  return response.json();
}

/** What one client saw while insisting on one key. */
export interface KeyOutcome {
  key: string;
  /** Final answer: 200 succeeded, or the replayed failure status; 0 when it gave up. */
  finalStatus: number;
  requests: number;
  networkErrors: number;
  unavailable: number;
  inProgress: number;
  /** Any 5xx other than 503 (and other than a replayed 502 failure): never allowed. */
  unexpected: string[];
}

/**
 * A well-behaved client: the same key and body on every retry, until a final
 * answer. Retries connection errors, 503 (honouring Retry-After) and 409.
 */
export async function insist(apiUrl: string, key: string, body: unknown, options: { deadlineMs?: number; waitSeconds?: number } = {}): Promise<KeyOutcome> {
  const deadline = Date.now() + (options.deadlineMs ?? 180_000);
  const outcome: KeyOutcome = { key, finalStatus: 0, requests: 0, networkErrors: 0, unavailable: 0, inProgress: 0, unexpected: [] };
  while (Date.now() < deadline) {
    outcome.requests++;
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${apiUrl}/v1/operations/generate-content`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${BENCH_TENANT.apiKey}`,
          'content-type': 'application/json',
          'idempotency-key': key,
          prefer: `wait=${options.waitSeconds ?? 10}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(((options.waitSeconds ?? 10) + 15) * 1000),
      });
      text = await response.text();
    } catch {
      outcome.networkErrors++;
      await sleep(200 + Math.random() * 300);
      continue;
    }
    if (response.status === 200) {
      outcome.finalStatus = 200;
      return outcome;
    }
    if (response.status === 503) {
      outcome.unavailable++;
      await sleep(Math.min(2_000, Number(response.headers.get('retry-after') ?? 1) * 1000) * (0.5 + Math.random() / 2));
      continue;
    }
    if (response.status === 409 || response.status === 202) {
      outcome.inProgress++;
      await sleep(200 + Math.random() * 300);
      continue;
    }
    const replayedFailure = response.headers.get('idempotent-replayed') === 'true' || /"operation"\s*:/.test(text);
    if (replayedFailure && response.status !== 500) {
      outcome.finalStatus = response.status;
      return outcome;
    }
    outcome.unexpected.push(`${response.status} ${text.slice(0, 160)}`);
    if (response.status >= 500) {
      await sleep(500);
      continue;
    }
    outcome.finalStatus = response.status;
    return outcome;
  }
  return outcome;
}

/** Runs `task` for each item with at most `concurrency` in flight. */
export async function pool<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        results[i] = await task(items[i]!, i);
      }
    }),
  );
  return results;
}
