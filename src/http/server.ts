/**
 * API process entry: the Fastify facade on HOST:PORT. Starts alone against
 * existing Temporal and PostgreSQL; SIGTERM stops accepting, finishes
 * in-flight requests, then closes connections.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadConfig } from '../config';
import { createLogger } from '../observability/logger';
import { startMetricsServer } from '../observability/metrics-server';
import { createTracing } from '../observability/tracing';
import { openProcessDatabase } from '../process/database';
import { runEntrypoint } from '../process/entrypoint';
import { ensureMaintenanceSchedule } from '../operations/maintenance-schedule';
import { connectTemporalClient } from '../temporal/client';
import { installTemporalRuntime } from '../temporal/runtime';
import { payloadCodecFromConfig } from '../temporal/codec-config';
import { provisionTenants } from '../tenants/api-keys';
import { buildApp } from './app';

runEntrypoint('api', async ({ onShutdown, stopped }) => {
  const config = loadConfig();
  // Before anything connects: without payload keys a production process must not start.
  const payloadCodec = payloadCodecFromConfig(config);
  const logger = createLogger({ service: 'api', level: config.LOG_LEVEL });
  // The Temporal client runs on Core's native connection (src/temporal/client.ts).
  installTemporalRuntime({ logger });
  const { pool, databaseUrl } = await openProcessDatabase({ role: 'api', config, logger, onShutdown });
  if (config.ONCEFLOW_TENANTS) await provisionTenants(pool, config.ONCEFLOW_TENANTS);
  const tracing = config.ONCEFLOW_TRACING ? createTracing({ service: 'api' }) : undefined;
  if (tracing) onShutdown(() => tracing.shutdown());
  const temporal = await connectTemporalClient({
    payloadCodec,
    address: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    compression: config.TEMPORAL_GRPC_COMPRESSION,
    plugins: tracing ? [tracing.plugin] : [],
  });
  onShutdown(() => temporal.connection.close());
  // Idempotent; every replica tries. Without the schedule lost reservations are
  // still started by the next request with their key, but nothing is purged.
  await ensureMaintenanceSchedule(temporal, { taskQueue: config.TEMPORAL_TASK_QUEUE }).then(
    (outcome) => logger.info({ outcome }, 'maintenance schedule ready'),
    (error: Error) => logger.error({ err: error.message }, 'could not create the maintenance schedule; expired keys are not purged until it exists'),
  );
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry, prefix: 'onceflow_api_' });
  const app = await buildApp({ config: { ...config, DATABASE_URL: databaseUrl }, pool, temporal, logger, metricsRegistry, tracing, payloadCodec });
  onShutdown(() => app.close());
  await app.listen({ host: config.HOST, port: config.PORT });
  if (config.API_METRICS_PORT !== undefined) {
    // Metrics on a listener of their own, for a port only the monitoring network reaches.
    const metricsServer = await startMetricsServer({ registry: metricsRegistry, port: config.API_METRICS_PORT, host: config.HOST, token: config.ONCEFLOW_METRICS_TOKEN });
    onShutdown(() => metricsServer.close());
  }
  logger.info({ url: `http://${config.HOST}:${config.PORT}`, temporal: config.TEMPORAL_ADDRESS }, 'api listening');
  await stopped;
});
