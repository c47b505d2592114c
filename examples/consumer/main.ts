/**
 * Runs the example consumer as a service of its own:
 *   DATABASE_URL=postgres://… WEBHOOK_SECRET=whsec_… PORT=8081 node --import tsx examples/consumer/main.ts
 * (optional: INBOX_CONSUMER, its name in the inbox, default example-consumer;
 * DATABASE_POOL_SIZE, inbox transactions at once, default 5; PORT=0 picks a
 * free port), then subscribe it: POST /v1/subscriptions
 * {"url":"http://127.0.0.1:8081/webhooks"} and use the secret from that
 * answer as WEBHOOK_SECRET. It is a separate service, so it reads its own environment.
 */
import { createPool } from '../../src/db/pool';
import { startExampleConsumer } from './consumer';

async function main(): Promise<void> {
  const { DATABASE_URL, WEBHOOK_SECRET, PORT, INBOX_CONSUMER, DATABASE_POOL_SIZE } = process.env;
  if (!DATABASE_URL || !WEBHOOK_SECRET?.startsWith('whsec_')) {
    throw new Error('set DATABASE_URL and WEBHOOK_SECRET (the whsec_… secret POST /v1/subscriptions returned)');
  }
  const pool = createPool({ connectionString: DATABASE_URL, max: Number(DATABASE_POOL_SIZE ?? 5), applicationName: 'example-consumer' });
  const consumer = await startExampleConsumer({ pool, secret: WEBHOOK_SECRET, port: Number(PORT ?? 8081), consumer: INBOX_CONSUMER || undefined });
  process.stdout.write(`example consumer listening on ${consumer.url}\n`);
  const stop = async () => {
    await consumer.close();
    await pool.end();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`example consumer: ${(error as Error).message}\n`);
  process.exit(1);
});
