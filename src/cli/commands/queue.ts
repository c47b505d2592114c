/**
 * `onceflow queue send`: one operation message, published the way a careful
 * producer publishes (persistent, publisher confirm), so an operator can try
 * the queue door by hand. `onceflow queue dead-letters`: the messages the
 * consumer refused, each with its problem, left in their queue.
 */
import amqp from 'amqplib';
import { Command } from 'commander';
import { QueueHeaders } from '../../queue/consumer';
import { jsonObject, positiveInt, runCommand, withJson } from '../context';
import { CliError, ExitCode } from '../errors';

export function queueCommand(): Command {
  const queue = new Command('queue').description('the queue door (RabbitMQ)');
  withJson(
    queue
      .command('send')
      .description('publish one operation message to QUEUE_NAME (the consumer starts or attaches to its operation)')
      .requiredOption('--tenant <tenant>', 'the tenant the operation belongs to')
      .requiredOption('--type <type>', 'the operation type, e.g. generate-content')
      .requiredOption('--input <json>', 'the operation input as JSON, e.g. \'{"prompt":"hi"}\'', jsonObject('--input'))
      .option('--key <key>', 'the Idempotency-Key (omit it for a type with key fields: the consumer derives it)'),
  ).action((options: { tenant: string; type: string; input: Record<string, unknown>; key?: string; json?: boolean }) =>
    runCommand(options, async (context) => {
      const url = requireRabbitmqUrl(context.config.RABBITMQ_URL);
      const connection = await amqp.connect(url);
      try {
        const channel = await connection.createConfirmChannel();
        // Declared as the consumer declares it, so a message sent before the consumer's first start waits for it.
        await channel.assertQueue(context.config.QUEUE_NAME, { durable: true });
        const headers = { [QueueHeaders.tenant]: options.tenant, ...(options.key ? { [QueueHeaders.idempotencyKey]: options.key } : {}) };
        channel.sendToQueue(context.config.QUEUE_NAME, Buffer.from(JSON.stringify({ operationType: options.type, input: options.input })), { persistent: true, headers });
        await channel.waitForConfirms();
        const sent = { queue: context.config.QUEUE_NAME, tenant: options.tenant, operationType: options.type, idempotencyKey: options.key ?? null };
        if (context.json) return context.out.json(sent);
        context.out.line(`sent to ${sent.queue}: ${sent.operationType} for ${sent.tenant}${options.key ? ` with key ${options.key}` : ' (key derived by the consumer)'}`);
      } finally {
        await connection.close();
      }
    }),
  );
  withJson(
    queue
      .command('dead-letters')
      .description('show refused messages and why (they stay in QUEUE_DEAD_LETTER_NAME)')
      .option('--limit <n>', 'at most this many', positiveInt('--limit'), 50),
  ).action((options: { limit: number; json?: boolean }) =>
    runCommand(options, async (context) => {
      const connection = await amqp.connect(requireRabbitmqUrl(context.config.RABBITMQ_URL));
      try {
        const channel = await connection.createChannel();
        await channel.checkQueue(context.config.QUEUE_DEAD_LETTER_NAME);
        const letters: { tenant: string; key: string; problem: string; detail: string; body: string }[] = [];
        for (let i = 0; i < options.limit; i++) {
          // Read without acknowledging: closing the channel puts every one back.
          const message = await channel.get(context.config.QUEUE_DEAD_LETTER_NAME, { noAck: false });
          if (!message) break;
          const headers = message.properties.headers ?? {};
          const problem = JSON.parse(String(headers[QueueHeaders.problem] ?? '{}')) as { type?: string; detail?: string };
          letters.push({
            tenant: String(headers[QueueHeaders.tenant] ?? ''),
            key: String(headers[QueueHeaders.idempotencyKey] ?? ''),
            problem: (problem.type ?? '').replace('https://onceflow.dev/problems/', ''),
            detail: problem.detail ?? '',
            body: message.content.toString('utf8'),
          });
        }
        await channel.close();
        if (context.json) return context.out.json(letters);
        context.out.table(letters, [
          { key: 'tenant', header: 'TENANT' },
          { key: 'key', header: 'KEY', maxWidth: 40 },
          { key: 'problem', header: 'PROBLEM' },
          { key: 'detail', header: 'DETAIL', maxWidth: 60 },
          { key: 'body', header: 'BODY', maxWidth: 60 },
        ]);
      } finally {
        await connection.close();
      }
    }),
  );
  return queue;
}

function requireRabbitmqUrl(url: string | undefined): string {
  if (!url) throw new CliError('RABBITMQ_URL is not set', ExitCode.Usage);
  return url;
}

