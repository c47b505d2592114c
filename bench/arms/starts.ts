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
import { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createPool } from '../../src/db/pool';
import { findFreePort } from '../../src/dev/ports';
import { fingerprint } from '../../src/idempotency/fingerprint';
import { PostgresIdempotencyStore } from '../../src/idempotency/store';
import { operationWorkflowId } from '../../src/idempotency/workflow-id';
import { createGeminiClient } from '../../src/integrations/gemini/client';
import { createGeminiMetrics } from '../../src/integrations/gemini/metrics';
import { createLogger } from '../../src/observability/logger';
import { operationTypes } from '../../src/operations/registry';
import { connectTemporalClient } from '../../src/temporal/client';
import { createOnceflowWorker } from '../../src/worker/create-worker';
import { searchAttributes, type OperationWorkflowInput } from '../../workflows/definitions';
import type { BenchContext } from '../lib/context';
import { postOperation } from '../lib/facade';
import { runClosedLoop, type LoadResult } from '../lib/load';
import { BENCH_TENANT, roleEnv, startRole, waitForHttp } from '../lib/stack';
import { median, pairedRatio, pairSpread, ratio, round } from '../lib/stats';

const CONCURRENCY = 16;
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

export async function newOperations(ctx: BenchContext): Promise<void> {
  // a) starts only: a second API process on a queue nobody polls.
  const idleQueue = `bench-no-worker-${randomUUID().slice(0, 8)}`;
  const port = await findFreePort();
  const startsApi = startRole('api', await roleEnv({ infra: ctx.infra, taskQueue: idleQueue, geminiBaseUrl: ctx.geminiUrl, extra: { PORT: String(port) } }));
  ctx.processes['api-starts'] = startsApi;
  const startsApiUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${startsApiUrl}/readyz`, 90_000, startsApi);
  const temporal = await connectTemporalClient({ address: ctx.infra.temporal.address, namespace: ctx.infra.temporal.namespace });

  let seq = 0;
  const facadeStart = (durationMs: number) =>
    runClosedLoop({
      concurrency: CONCURRENCY,
      durationMs,
      op: async () => {
        const key = `start-f-${seq++}-${randomUUID().slice(0, 8)}`;
        const answer = await postOperation(startsApiUrl, key, { prompt: `start ${key}` });
        if (answer.status !== 202) throw new Error(`HTTP ${answer.status}`);
      },
    });
  const bareStart = (durationMs: number) =>
    runClosedLoop({
      concurrency: CONCURRENCY,
      durationMs,
      op: async () => {
        const key = `start-b-${seq++}-${randomUUID().slice(0, 8)}`;
        const input: OperationWorkflowInput = { operationId: randomUUID(), tenantId: BENCH_TENANT.tenantId, operationType: definition.name, idempotencyKey: key, input: { prompt: `start ${key}` } };
        await temporal.workflow.start(definition.workflowType, startOptions(idleQueue, key, input));
      },
    });

  ctx.log('  new operations: warm-up of both start paths');
  await facadeStart(2000);
  await bareStart(2000);
  const facadeRuns: LoadResult[] = [];
  const bareRuns: LoadResult[] = [];
  let stopSampling = ctx.memory.underLoad();
  for (let run = 0; run < ctx.pairs; run++) {
    const order = run % 2 === 0 ? (['facade', 'bare'] as const) : (['bare', 'facade'] as const);
    for (const arm of order) {
      const result = arm === 'facade' ? await facadeStart(ctx.pairSeconds * 1000) : await bareStart(ctx.pairSeconds * 1000);
      (arm === 'facade' ? facadeRuns : bareRuns).push(result);
      ctx.log(`  starts pair ${run + 1}/${ctx.pairs} ${arm}: ${round(result.throughput, 0)} starts/s, p50 ${round(result.p50Ms, 1)} ms, p99 ${round(result.p99Ms, 1)} ms, failed ${result.failed}`);
    }
  }
  stopSampling();
  await startsApi.stop();
  delete ctx.processes['api-starts'];
  const strip = (runs: LoadResult[]) => runs.map(({ latenciesMs: _l, ...rest }: LoadResult & { latenciesMs?: number[] }) => rest);
  ctx.raw.starts = { concurrency: CONCURRENCY, facadeRuns: strip(facadeRuns), bareRuns: strip(bareRuns) };
  const f = median(facadeRuns.map((r) => r.throughput));
  const b = median(bareRuns.map((r) => r.throughput));
  const startsRatio = pairedRatio(facadeRuns.map((r) => r.throughput), bareRuns.map((r) => r.throughput));
  const fp50 = median(facadeRuns.map((r) => r.p50Ms));
  const bp50 = median(bareRuns.map((r) => r.p50Ms));
  const fp99 = median(facadeRuns.map((r) => r.p99Ms));
  const bp99 = median(bareRuns.map((r) => r.p99Ms));
  ctx.figures.push(
    { benchmark: '2 new operations', metric: 'accepted starts', unit: 'starts/s', onceflow: round(f, 0), reference: round(b, 0), ratio: round(startsRatio), target: '≥ 0.8', met: startsRatio >= 0.8, referenceName: 'bare client.workflow.start', note: `ratio: median of ${ctx.pairs} paired runs (${pairSpread(facadeRuns.map((r) => r.throughput), bareRuns.map((r) => r.throughput))})` },
    { benchmark: '2 new operations', metric: 'start latency p50', unit: 'ms', onceflow: round(fp50, 1), reference: round(bp50, 1), ratio: round(ratio(fp50, bp50)), target: '', referenceName: 'bare client.workflow.start' },
    { benchmark: '2 new operations', metric: 'start latency p99', unit: 'ms', onceflow: round(fp99, 1), reference: round(bp99, 1), ratio: round(ratio(fp99, bp99)), target: '', referenceName: 'bare client.workflow.start' },
  );

  // b) completed end to end.
  const total = Math.max(60, ctx.seconds * 30);
  stopSampling = ctx.memory.underLoad();
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
          const input: OperationWorkflowInput = { operationId: record.operationId, tenantId: record.tenantId, operationType: record.operationType, idempotencyKey: key, input: body };
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
    await temporal.connection.close();
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
      modelChain: ['gemini-2.5-flash', 'gemini-2.5-flash-lite'],
    },
  });
  const running = worker.run();
  return {
    client,
    taskQueue,
    store: new PostgresIdempotencyStore(pool),
    stop: async () => {
      worker.shutdown();
      await running;
      await connection.close();
      await pool.end();
    },
  };
}
