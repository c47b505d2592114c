/**
 * Worker entry: runs Onceflow's workflows and activities on the task queue.
 * Starts alone against existing Temporal and PostgreSQL (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, DATABASE_URL). SIGTERM/SIGINT drain in-flight tasks.
 */
import path from 'node:path';
import { Client } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadConfig } from '../config';
import { createLogger } from '../observability/logger';
import { startMetricsServer } from '../observability/metrics-server';
import { createTracing } from '../observability/tracing';
import { openProcessDatabase } from '../process/database';
import { runEntrypoint } from '../process/entrypoint';
import { createOnceflowWorker } from './create-worker';
import { loadWorkflowBundle } from './workflow-bundle';
import { installTemporalRuntime } from '../temporal/runtime';
import { payloadCodecFromConfig } from '../temporal/codec-config';
import { geminiClientFromConfig } from '../integrations/gemini/from-config';
import { ensureOutboxPruneSchedule } from '../outbox/prune-schedule';
import { createGeminiMetrics } from '../integrations/gemini/metrics';
import { createDoorMetrics } from '../doors/metrics';
import { assertModelsPriced } from '../operations/pricing';
import { registerSpendGauges } from '../spend/metrics';
import { provisionBudgets } from '../spend/provision';

runEntrypoint('worker', async ({ onShutdown }) => {
  const config = loadConfig();
  // Before anything connects: a model that can be asked for but not priced could be neither capped nor counted.
  assertModelsPriced(config.GEMINI_ALLOWED_MODELS);
  // Before anything connects: without payload keys a production process must not start.
  const payloadCodec = payloadCodecFromConfig(config);
  const logger = createLogger({ service: 'worker', level: config.LOG_LEVEL });
  // Core's metrics (task slots, poll latencies, schedule-to-start) on their own port: prom-client never sees them.
  installTemporalRuntime({ logger, sdkMetricsPort: config.WORKER_SDK_METRICS_PORT });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'onceflow_worker_' });
  const { pool } = await openProcessDatabase({ role: 'worker', config, logger, onShutdown });
  if (config.ONCEFLOW_BUDGETS) await provisionBudgets(pool, config.ONCEFLOW_BUDGETS, logger);
  registerSpendGauges(registry, pool, logger);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS, grpcCompression: { codec: config.TEMPORAL_GRPC_COMPRESSION } });
  onShutdown(() => connection.close());
  const tracing = config.ONCEFLOW_TRACING ? createTracing({ service: 'worker' }) : undefined;
  if (tracing) onShutdown(() => tracing.shutdown());
  const plugins = tracing ? [tracing.plugin] : [];
  const worker = await createOnceflowWorker({
    plugins,
    payloadCodec,
    // Cached per version of the workflow code: a restart does not pay for webpack again.
    workflowBundle: await loadWorkflowBundle({ cacheDir: path.join(config.stateDir, 'cache'), plugins, logger }),
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    activityDeps: {
      pool,
      logger,
      gemini: geminiClientFromConfig(config),
      geminiMetrics: createGeminiMetrics(registry, { allowedModels: config.GEMINI_ALLOWED_MODELS }),
      modelChain: config.GEMINI_MODELS,
      outboxRetentionDays: config.OUTBOX_RETENTION_DAYS,
      pausedRetentionDays: config.OUTBOX_PAUSED_RETENTION_DAYS,
      spendRetentionDays: config.ONCEFLOW_SPEND_RETENTION_DAYS,
      billDetailMonths: config.ONCEFLOW_BILL_DETAIL_MONTHS,
      defaultRetentionHours: config.ONCEFLOW_DEFAULT_RETENTION_HOURS,
      doorMetrics: createDoorMetrics(registry),
    },
  });
  // Idempotent: every worker start makes sure the prune schedule exists; it then runs once per hour however many workers there are.
  const prune = await ensureOutboxPruneSchedule(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, ...(payloadCodec ? { dataConverter: { payloadCodecs: [payloadCodec] } } : {}) }), { taskQueue: config.TEMPORAL_TASK_QUEUE });
  logger.info({ schedule: prune }, 'outbox prune schedule ensured');
  const metrics = await startMetricsServer({ registry, port: config.WORKER_METRICS_PORT });
  onShutdown(() => metrics.close());
  onShutdown(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
  });
  logger.info(
    { taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS, metrics: metrics.url, sdkMetricsPort: config.WORKER_SDK_METRICS_PORT },
    'worker polling',
  );
  await worker.run();
});
