/**
 * RabbitMQ (amqplib) adapter of the queue door: turns deliveries into
 * QueueMessages and carries out each Disposition. Topology, declared on
 * start: a durable work queue, and a durable dead-letter queue.
 */
import amqp, { type ConfirmChannel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Logger } from '../../observability/logger';
import { handleQueueMessage, QueueHeaders, type QueueConsumerDeps, type QueueMessage } from '../consumer';

export interface RabbitmqConsumerOptions {
  url: string;
  queue: string;
  deadLetterQueue: string;
  /** Unacknowledged messages in flight per consumer (QUEUE_PREFETCH). */
  prefetch: number;
  /** How long a message waits before it is given back after a dependency failed, in ms. Default 1000. */
  retryDelayMs?: number;
  logger: Logger;
}

export interface RunningConsumer {
  /** Resolves when the connection closed unexpectedly (the process should exit and be restarted). */
  closed: Promise<Error | undefined>;
  /** Stops taking messages, lets the ones in hand finish, closes. */
  stop(): Promise<void>;
}

export async function startRabbitmqConsumer(options: RabbitmqConsumerOptions, deps: Omit<QueueConsumerDeps, 'queue'>): Promise<RunningConsumer> {
  const connection: ChannelModel = await amqp.connect(options.url);
  let stopping = false;
  const closed = new Promise<Error | undefined>((resolve) => {
    connection.on('error', (error: Error) => options.logger.error({ err: error.message }, 'rabbitmq connection error'));
    connection.on('close', (error?: Error) => resolve(stopping ? undefined : (error ?? new Error('rabbitmq connection closed'))));
  });
  // Confirms: a dead letter counts as stored only when the broker says so, and only then is the original acknowledged.
  const channel: ConfirmChannel = await connection.createConfirmChannel();
  await channel.assertQueue(options.deadLetterQueue, { durable: true });
  await channel.assertQueue(options.queue, { durable: true });
  await channel.prefetch(options.prefetch);
  const inHand = new Set<Promise<void>>();

  const { consumerTag } = await channel.consume(options.queue, (delivery) => {
    if (!delivery) return; // the queue was deleted; `closed` tells the process
    const work = handle(delivery).finally(() => inHand.delete(work));
    inHand.add(work);
  });

  async function handle(delivery: ConsumeMessage): Promise<void> {
    const message = toQueueMessage(delivery);
    const disposition = await handleQueueMessage({ ...deps, queue: options.queue }, message);
    try {
      if (disposition.kind === 'ack') {
        channel.ack(delivery);
      } else if (disposition.kind === 'dead-letter') {
        await publishConfirmed(channel, options.deadLetterQueue, delivery.content, {
          ...delivery.properties,
          headers: { ...delivery.properties.headers, [QueueHeaders.problem]: JSON.stringify(disposition.problem) },
        });
        // Dying here leaves the dead letter stored and the message unacknowledged: it is delivered
        // again and dead-lettered again (a second copy, never a second operation).
        channel.ack(delivery);
      } else {
        // Not the message's fault: back to the queue after a pause, without a tight loop while PostgreSQL is down.
        setTimeout(() => {
          if (!stopping) channel.nack(delivery, false, true);
        }, options.retryDelayMs ?? 1_000).unref();
      }
    } catch (error) {
      options.logger.error({ err: (error as Error).message }, 'could not settle a queue message; the broker delivers it again');
    }
  }

  return {
    closed,
    stop: async () => {
      stopping = true;
      await channel.cancel(consumerTag).catch(() => undefined);
      await Promise.allSettled([...inHand]);
      await connection.close().catch(() => undefined);
    },
  };
}

function publishConfirmed(channel: ConfirmChannel, queue: string, content: Buffer, properties: amqp.Options.Publish): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.sendToQueue(queue, content, { ...properties, persistent: true }, (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()));
  });
}

function toQueueMessage(delivery: ConsumeMessage): QueueMessage {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(delivery.properties.headers ?? {})) {
    if (typeof value === 'string') headers[name.toLowerCase()] = value;
    else if (Buffer.isBuffer(value)) headers[name.toLowerCase()] = value.toString('utf8');
  }
  return { body: delivery.content, headers, redelivered: delivery.fields.redelivered };
}
