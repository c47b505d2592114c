/**
 * Relay entry: delivers outbox events to subscribers. Run as many as you like
 * side by side; they share the work through leases. SIGTERM finishes the
 * current batch, then stops.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadConfig } from '../config';
import { secretBoxFromConfig } from '../crypto/secret-box';
import { createLogger } from '../observability/logger';
import { startMetricsServer } from '../observability/metrics-server';
import { AddressPolicy } from '../outbox/address-policy';
import { createRelayMetrics, registerOutboxBacklogGauges } from '../outbox/metrics';
import { OutboxRelay } from '../outbox/relay';
import { openProcessDatabase } from '../process/database';
import { runEntrypoint } from '../process/entrypoint';

runEntrypoint('relay', async ({ onShutdown, stopped }) => {
  const config = loadConfig();
  const logger = createLogger({ service: 'relay', level: config.LOG_LEVEL });
  const { pool, databaseUrl } = await openProcessDatabase({ role: 'relay', config, logger, onShutdown });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'onceflow_relay_' });
  registerOutboxBacklogGauges(registry, pool);
  const relay = new OutboxRelay({
    pool,
    connectionString: databaseUrl,
    secretBox: secretBoxFromConfig(config),
    logger,
    metrics: createRelayMetrics(registry),
    addressPolicy: new AddressPolicy({ allowedHosts: config.WEBHOOK_ALLOWED_HOSTS }),
    maxInFlightPerSubscription: config.RELAY_MAX_IN_FLIGHT_PER_SUBSCRIPTION,
    maxSubscriptionsPerTenant: config.ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT,
    slowAfterMs: config.RELAY_SLOW_AFTER_MS,
    slowLanePercent: config.RELAY_SLOW_LANE_PERCENT,
    batchSize: config.RELAY_BATCH_SIZE,
    pollIntervalMs: config.RELAY_POLL_INTERVAL_MS,
    maxAttempts: config.RELAY_MAX_ATTEMPTS,
    deliveryTimeoutMs: config.RELAY_DELIVERY_TIMEOUT_MS,
    retryBaseMs: config.RELAY_RETRY_BASE_MS,
    retryCapMs: config.RELAY_RETRY_CAP_MS,
    deadLetterAfterMs: config.RELAY_DEAD_LETTER_AFTER_MS,
  });
  const metrics = await startMetricsServer({ registry, port: config.RELAY_METRICS_PORT });
  onShutdown(() => metrics.close());
  relay.start();
  onShutdown(() => relay.stop());
  logger.info({ metrics: metrics.url }, 'relay delivering');
  await stopped;
});
