/**
 * Queue consumer entry: starts one operation per message from RabbitMQ
 * (RABBITMQ_URL, QUEUE_NAME), in the same key space as HTTP. Run as many as
 * you like: the broker shares messages among them, and a message delivered to
 * two of them (one died before acknowledging) is one operation. SIGTERM stops
 * taking messages and settles the ones in hand.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadConfig } from '../config';
import { createDoorMetrics } from '../doors/metrics';
import { createDoorDeps } from '../doors/start-operation';
import { createLogger } from '../observability/logger';
import { startMetricsServer } from '../observability/metrics-server';
import { openProcessDatabase } from '../process/database';
import { runEntrypoint, StartupError } from '../process/entrypoint';
import { startRabbitmqConsumer } from '../queue/adapters/rabbitmq';
import { createQueueMetrics } from '../queue/metrics';
import { connectTemporalClient } from '../temporal/client';
import { installTemporalRuntime } from '../temporal/runtime';

runEntrypoint('consumer', async ({ onShutdown, stopped }) => {
  const config = loadConfig();
  const logger = createLogger({ service: 'consumer', level: config.LOG_LEVEL });
  if (!config.RABBITMQ_URL) throw new StartupError('RABBITMQ_URL is not set', 'the consumer needs a broker to read from: set RABBITMQ_URL=amqp://…');
  installTemporalRuntime({ logger });
  const { pool } = await openProcessDatabase({ role: 'consumer', config, logger, onShutdown });
  const temporal = await connectTemporalClient({ address: config.TEMPORAL_ADDRESS, namespace: config.TEMPORAL_NAMESPACE, compression: config.TEMPORAL_GRPC_COMPRESSION, plugins: [] });
  onShutdown(() => temporal.connection.close());
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'onceflow_consumer_' });
  const consumer = await startRabbitmqConsumer(
    { url: config.RABBITMQ_URL, queue: config.QUEUE_NAME, deadLetterQueue: config.QUEUE_DEAD_LETTER_NAME, prefetch: config.QUEUE_PREFETCH, logger },
    {
      door: createDoorDeps({
        pool,
        temporal,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        modelChain: config.GEMINI_MODELS,
        allowedModels: config.GEMINI_ALLOWED_MODELS,
        defaultRetentionHours: config.ONCEFLOW_DEFAULT_RETENTION_HOURS,
      }),
      logger,
      doorMetrics: createDoorMetrics(registry),
      queueMetrics: createQueueMetrics(registry),
    },
  );
  onShutdown(() => consumer.stop());
  const metrics = await startMetricsServer({ registry, port: config.CONSUMER_METRICS_PORT });
  onShutdown(() => metrics.close());
  logger.info({ queue: config.QUEUE_NAME, deadLetterQueue: config.QUEUE_DEAD_LETTER_NAME, metrics: metrics.url }, 'consumer consuming');
  // A lost broker connection ends the process (non-zero) so its supervisor restarts it; unacknowledged messages go back to the queue.
  const lost = await Promise.race([stopped.then(() => undefined), consumer.closed]);
  if (lost) throw lost;
});
