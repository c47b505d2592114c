/** `onceflow queue dead-letters`: the messages the consumer refused, each with its problem, left in their queue. */
import amqp from 'amqplib';
import { Command } from 'commander';
import { QueueHeaders } from '../../queue/consumer';
import { positiveInt, runCommand, withJson } from '../context';
import { CliError, ExitCode } from '../errors';

export function queueCommand(): Command {
  const queue = new Command('queue').description('the queue door (RabbitMQ)');
  withJson(
    queue
      .command('dead-letters')
      .description('show refused messages and why (they stay in QUEUE_DEAD_LETTER_NAME)')
      .option('--limit <n>', 'at most this many', positiveInt('--limit'), 50),
  ).action((options: { limit: number; json?: boolean }) =>
    runCommand(options, async (context) => {
      if (!context.config.RABBITMQ_URL) throw new CliError('RABBITMQ_URL is not set', ExitCode.Usage);
      const connection = await amqp.connect(context.config.RABBITMQ_URL);
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
