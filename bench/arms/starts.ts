/**
 * 2. New operations.
 *  a) Accepted starts through the facade (202) against bare
 *     `client.workflow.start` of the same workflow with the same options on
 *     the same dev server (ID policies, timeout, search attributes, summary;
 *     the facade also sends the markdown details the UI shows, and that cost
 *     is counted as its own). Both start onto a task queue no worker polls,
 *     so the figure is the cost of a start and nothing else.
 *  b) Completed operations end to end with the offline Gemini answering at
 *     once: through the facade (`Prefer: wait`), and through a driver that
 *     reserves the key in PostgreSQL and starts the workflow itself with a
 *     worker in the same process, with Temporal's eager workflow start on and
 *     off (the facade has no switch for it: eager start needs the worker in
 *     the starting process).
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createPool } from '../../src/db/pool';
import { findFreePort } from '../../dev/ports';
import { fingerprint } from '../../src/idempotency/fingerprint';
import { PostgresOperationsRepository } from '../../src/operations/repository';
import { operationWorkflowId } from '../../src/idempotency/workflow-id';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { createLogger } from '../../src/observability/logger';
import { modelChainFor } from '../../src/operations/model-chain';
import { operationTypes } from '../../src/operations/registry';
import { connectTemporalClient } from '../../src/temporal/client';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { searchAttributes, type OperationWorkflowInput } from '../../workflows/definitions';
import type { BenchContext } from '../lib/context';
import { cpuPerOperation, snapshotCpu, type CpuGroup } from '../lib/cpu';
import { postOperation } from '../lib/facade';
import { runClosedLoop, type LoadResult } from '../lib/load';
import { BENCH_TENANT, roleEnv, startRole, waitForHttp } from '../lib/stack';
import { median, pairedRatio, pairSpread, ratio, round } from '../lib/stats';

const CONCURRENCY = 16;
/** The chain the bench processes run with (GEMINI_MODELS default); the driver resolves it as the facade's starter does. */
const MODEL_CHAIN = ['gemini-2.5-flash', 'gemini-2.5-flash-lite'];
const definition = operationTypes['generate-content'];
/** The facade's default retention (ONCEFLOW_DEFAULT_RETENTION_HOURS), which the bench processes run with. */
const RETENTION_MS = 24 * 3_600_000;

function startOptions(taskQueue: string, key: string, input: OperationWorkflowInput) {
  return {
    workflowId: operationWorkflowId(BENCH_TENANT.tenantId, definition.name, key),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
    workflowIdReusePolicy: 'ALLOW_DUPLICATE' as const,
    workflowExecutionTimeout: RETENTION_MS,
    typedSearchAttributes: [
      { key: searchAttributes.tenant, value: BENCH_TENANT.tenantId },
      { key: searchAttributes.operationType, value: definition.name },
      { key: searchAttributes.idempotencyKey, value: key },
    ],
    staticSummary: `generate-content · key ${key} · tenant ${BENCH_TENANT.tenantId}`,
  };
}

/** The arms of 2a: the facade, and bare `client.workflow.start` over each of the SDK's two connection kinds. */
const START_ARMS = ['facade', 'bare', 'bareNative'] as const;
type StartArm = (typeof START_ARMS)[number];
const START_ARM_LABELS: Record<StartArm, string> = {
  facade: 'facade',
  bare: 'bare client.workflow.start (Connection)',
  bareNative: 'bare client.workflow.start (NativeConnection)',
};

/**
 * 2a: accepted starts through a second API process on a queue nobody polls,
 * against bare `client.workflow.start`. The target's reference is the client
 * as a user gets it by default: `Client` over `Connection` (grpc-js). The api
 * itself starts over a NativeConnection (Core's Rust gRPC stack), so the same
 * start over a NativeConnection is measured too, in the same rotation, and
 * reported next to it: that ratio is the facade's cost with the transport
 * held equal.
 */
export async function acceptedStarts(ctx: BenchContext): Promise<void> {
  const idleQueue = `bench-no-worker-${randomUUID().slice(0, 8)}`;
  const port = await findFreePort();
  const startsApi = startRole('api', await roleEnv({ infra: ctx.infra, taskQueue: idleQueue, geminiBaseUrl: ctx.geminiUrl, extra: { PORT: String(port) } }));
  ctx.processes['api-starts'] = startsApi;
  const startsApiUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${startsApiUrl}/readyz`, 90_000, startsApi);
  const { address, namespace } = ctx.infra.temporal;
  const grpcJs = new Client({ connection: await Connection.connect({ address }), namespace });
  const native = await connectTemporalClient({ address, namespace });

  let seq = 0;
  const bareStart = (client: Client) => async () => {
    const key = `start-b-${seq++}-${randomUUID().slice(0, 8)}`;
    const input: OperationWorkflowInput = { operationId: randomUUID(), tenantId: BENCH_TENANT.tenantId, operationType: definition.name, idempotencyKey: key, input: { prompt: `start ${key}` } };
    await client.workflow.start(definition.workflowType, startOptions(idleQueue, key, input));
  };
  const ops: Record<StartArm, () => Promise<void>> = {
    facade: async () => {
      const key = `start-f-${seq++}-${randomUUID().slice(0, 8)}`;
      const answer = await postOperation(startsApiUrl, key, { prompt: `start ${key}` });
      if (answer.status !== 202) throw new Error(`HTTP ${answer.status}`);
    },
    bare: bareStart(grpcJs),
    bareNative: bareStart(native),
  };
  const runArm = (arm: StartArm, durationMs: number) => runClosedLoop({ concurrency: CONCURRENCY, durationMs, op: ops[arm] });

  ctx.log('  new operations: warm-up of every start path');
  for (const arm of START_ARMS) await runArm(arm, 2000);
  const runs: Record<StartArm, LoadResult[]> = { facade: [], bare: [], bareNative: [] };
  // Where each arm's CPU goes: the harness (the load generator, and the bare
  // arms' Temporal client), the api, the Temporal server, PostgreSQL's backends.
  const cpuGroups: CpuGroup[] = [
    { name: 'harness', pids: () => [process.pid] },
    { name: 'api', pids: () => [startsApi.pid] },
    // The dev server is one `temporal` process; a cluster is four service processes (bench --temporal cluster).
    ctx.infra.cluster
      ? { name: 'temporal', pids: () => Object.values(ctx.infra.cluster!.services).flatMap((s) => s.pid() ?? []) }
      : { name: 'temporal', comm: 'temporal' },
    { name: 'postgres', comm: 'postgres' },
  ];
  const cpuMs: Record<StartArm, Map<string, number>> = { facade: new Map(), bare: new Map(), bareNative: new Map() };
  const stopSampling = ctx.memory.underLoad();
  for (let run = 0; run < ctx.pairs; run++) {
    // Rotate the order so no arm always runs first or last in its group.
    const order = START_ARMS.map((_, i) => START_ARMS[(i + run) % START_ARMS.length]!);
    for (const arm of order) {
      const before = snapshotCpu(cpuGroups);
      const result = await runArm(arm, ctx.pairSeconds * 1000);
      for (const [group, ms] of Object.entries(cpuPerOperation(before, snapshotCpu(cpuGroups), 1))) cpuMs[arm].set(group, (cpuMs[arm].get(group) ?? 0) + ms);
      runs[arm].push(result);
      ctx.log(`  starts group ${run + 1}/${ctx.pairs} ${arm}: ${round(result.throughput, 0)} starts/s, p50 ${round(result.p50Ms, 1)} ms, p99 ${round(result.p99Ms, 1)} ms, failed ${result.failed}`);
    }
  }
  stopSampling();
  await startsApi.stop();
  delete ctx.processes['api-starts'];
  await grpcJs.connection.close();
  await native.connection.close();

  const strip = (armRuns: LoadResult[]) => armRuns.map(({ latenciesMs: _l, ...rest }: LoadResult & { latenciesMs?: number[] }) => rest);
  const cpu = Object.fromEntries(
    START_ARMS.map((arm) => {
      const starts = runs[arm].reduce((sum, r) => sum + r.ok, 0);
      return [arm, Object.fromEntries([...cpuMs[arm]].map(([group, ms]) => [group, round(ms / starts, 2)]))];
    }),
  ) as Record<StartArm, Record<string, number>>;
  const cpuTotal = (arm: StartArm) => round(Object.values(cpu[arm]).reduce((a, b) => a + b, 0), 2);
  const cpuNote = (arm: StartArm) => Object.entries(cpu[arm]).map(([group, ms]) => `${group} ${ms}`).join(', ');
  ctx.log(`  CPU per start (ms): ${START_ARMS.map((arm) => `${arm}: ${cpuNote(arm)}`).join('; ')}`);
  ctx.raw.starts = { concurrency: CONCURRENCY, runs: Object.fromEntries(START_ARMS.map((arm) => [arm, strip(runs[arm])])), cpuMsPerStart: cpu };

  const throughput = (arm: StartArm) => runs[arm].map((r) => r.throughput);
  const medianOf = (arm: StartArm, pick: (r: LoadResult) => number) => median(runs[arm].map(pick));
  for (const reference of ['bare', 'bareNative'] as const) {
    const paired = pairedRatio(throughput('facade'), throughput(reference));
    const primary = reference === 'bare';
    const referenceName = START_ARM_LABELS[reference];
    const p50 = [medianOf('facade', (r) => r.p50Ms), medianOf(reference, (r) => r.p50Ms)] as const;
    const p99 = [medianOf('facade', (r) => r.p99Ms), medianOf(reference, (r) => r.p99Ms)] as const;
    ctx.figures.push(
      {
        benchmark: '2 new operations', metric: 'accepted starts', unit: 'starts/s',
        onceflow: round(median(throughput('facade')), 0), reference: round(median(throughput(reference)), 0), ratio: round(paired),
        target: primary ? '≥ 0.8' : '', met: primary ? paired >= 0.8 : undefined, referenceName,
        note: `ratio: median of ${ctx.pairs} paired runs (${pairSpread(throughput('facade'), throughput(reference))})${primary ? '' : '; same transport as the api'}`,
      },
      { benchmark: '2 new operations', metric: 'start latency p50', unit: 'ms', onceflow: round(p50[0], 1), reference: round(p50[1], 1), ratio: round(ratio(p50[0], p50[1])), target: '', referenceName },
      { benchmark: '2 new operations', metric: 'start latency p99', unit: 'ms', onceflow: round(p99[0], 1), reference: round(p99[1], 1), ratio: round(ratio(p99[0], p99[1])), target: '', referenceName },
      {
        benchmark: '2 new operations', metric: 'CPU per start, all processes', unit: 'ms',
        onceflow: cpuTotal('facade'), reference: cpuTotal(reference), ratio: round(ratio(cpuTotal('facade'), cpuTotal(reference))), target: '', referenceName,
        note: `facade: ${cpuNote('facade')}; reference: ${cpuNote(reference)}`,
      },
    );
  }
}

/** 2b: completed operations end to end, through the facade and through a driver with eager start on and off. */
export async function completedOperations(ctx: BenchContext): Promise<void> {
  let seq = 0;
  const strip = (runs: LoadResult[]) => runs.map(({ latenciesMs: _l, ...rest }: LoadResult & { latenciesMs?: number[] }) => rest);
  const total = Math.max(60, ctx.seconds * 30);
  const stopSampling = ctx.memory.underLoad();
  const e2eRuns: LoadResult[] = [];
  for (let run = 0; run < ctx.runs; run++) {
    const result = await runClosedLoop({
      concurrency: CONCURRENCY,
      total,
      op: async () => {
        const key = `e2e-${seq++}-${randomUUID().slice(0, 8)}`;
        const answer = await postOperation(ctx.apiUrl, key, { prompt: `e2e ${key}` }, { waitSeconds: 30 });
        if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
      },
    });
    e2eRuns.push(result);
    ctx.log(`  completed end to end (facade) run ${run + 1}/${ctx.runs}: ${round(result.throughput, 1)} ops/s, p50 ${round(result.p50Ms, 0)} ms, p99 ${round(result.p99Ms, 0)} ms, failed ${result.failed}`);
  }
  stopSampling();

  const driver = await startDriverWorker(ctx);
  const eagerRuns: Record<'on' | 'off', LoadResult[]> = { on: [], off: [] };
  const eagerlyStarted = { on: 0, off: 0 };
  try {
    const drive = (eager: boolean, count: number) =>
      runClosedLoop({
        concurrency: CONCURRENCY,
        total: count,
        op: async () => {
          const key = `drv-${seq++}-${randomUUID().slice(0, 8)}`;
          const body = { prompt: `driver ${key}` };
          const nowMs = Date.now();
          const { record } = await driver.store.reserve({
            tenantId: BENCH_TENANT.tenantId, operationType: definition.name, idempotencyKey: key, operationId: randomUUID(),
            fingerprint: fingerprint(body, definition.nonEssentialFields), workflowId: operationWorkflowId(BENCH_TENANT.tenantId, definition.name, key),
            input: body, nowMs, expiresAtMs: nowMs + RETENTION_MS,
          });
          const input: OperationWorkflowInput = { operationId: record.operationId, tenantId: record.tenantId, operationType: record.operationType, idempotencyKey: key, input: body, models: modelChainFor(undefined, MODEL_CHAIN) };
          const handle = await driver.client.workflow.start(definition.workflowType, { ...startOptions(driver.taskQueue, key, input), requestEagerStart: eager });
          if (handle.eagerlyStarted) eagerlyStarted[eager ? 'on' : 'off']++;
          await driver.store.markStarted(record.operationId, handle.firstExecutionRunId);
          await handle.result();
        },
      });
    ctx.log('  eager start driver: warm-up');
    await drive(true, 30);
    await drive(false, 30);
    eagerlyStarted.on = 0;
    eagerlyStarted.off = 0;
    for (let run = 0; run < ctx.runs; run++) {
      for (const eager of run % 2 === 0 ? [true, false] : [false, true]) {
        const result = await drive(eager, total);
        eagerRuns[eager ? 'on' : 'off'].push(result);
        ctx.log(`  completed end to end (driver, eager ${eager ? 'on' : 'off'}) run ${run + 1}/${ctx.runs}: ${round(result.throughput, 1)} ops/s, p50 ${round(result.p50Ms, 0)} ms, p99 ${round(result.p99Ms, 0)} ms, failed ${result.failed}`);
      }
    }
  } finally {
    await driver.stop();
  }
  ctx.raw.endToEnd = { concurrency: CONCURRENCY, operationsPerRun: total, facadeRuns: strip(e2eRuns), eagerOn: strip(eagerRuns.on), eagerOff: strip(eagerRuns.off), eagerlyStarted };
  const e2e = median(e2eRuns.map((r) => r.throughput));
  const on = median(eagerRuns.on.map((r) => r.throughput));
  const off = median(eagerRuns.off.map((r) => r.throughput));
  const onP50 = median(eagerRuns.on.map((r) => r.p50Ms));
  const offP50 = median(eagerRuns.off.map((r) => r.p50Ms));
  ctx.figures.push(
    { benchmark: '2 new operations', metric: 'completed end to end (facade, Prefer: wait)', unit: 'ops/s', onceflow: round(e2e, 1), reference: round(off, 1), ratio: round(ratio(e2e, off)), target: '', referenceName: 'driver: reserve + start + result, no HTTP, eager off' },
    { benchmark: '2 new operations', metric: 'completed end to end, eager start on vs off', unit: 'ops/s', onceflow: round(on, 1), reference: round(off, 1), ratio: round(ratio(on, off)), target: '', referenceName: 'same driver, eager off', note: `${eagerlyStarted.on} of ${eagerRuns.on.reduce((s, r) => s + r.ok, 0)} starts were eager` },
    { benchmark: '2 new operations', metric: 'completion latency p50, eager on vs off', unit: 'ms', onceflow: round(onP50, 0), reference: round(offP50, 0), ratio: round(ratio(onP50, offP50)), target: '', referenceName: 'same driver, eager off' },
  );
}

/** A worker and a client sharing one NativeConnection in this process (what eager start requires). */
async function startDriverWorker(ctx: BenchContext) {
  const taskQueue = `bench-driver-${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect({ address: ctx.infra.temporal.address });
  const client = new Client({ connection, namespace: ctx.infra.temporal.namespace });
  // Its own pool, sized like the worker process's (DATABASE_POOL_SIZE default 10).
  const pool = createPool({ connectionString: ctx.infra.databaseUrl, max: 10, applicationName: 'onceflow-bench-driver' });
  const worker: Worker = await createOnceflowWorker({
    connection,
    namespace: ctx.infra.temporal.namespace,
    taskQueue,
    activityDeps: {
      pool,
      logger: createLogger({ service: 'bench-driver', level: 'silent' }),
      gemini: createGeminiClient({ apiKey: 'offline-model-server', baseUrl: ctx.geminiUrl, timeoutMs: 30_000 }),
      geminiMetrics: createGeminiMetrics(new Registry()),
      modelChain: MODEL_CHAIN,
    },
  });
  const running = worker.run();
  return {
    client,
    taskQueue,
    store: new PostgresOperationsRepository(pool),
    stop: async () => {
      worker.shutdown();
      await running;
      await connection.close();
      await pool.end();
    },
  };
}
