import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { startExampleConsumer, type ExampleConsumer } from '../../examples/consumer/consumer';
import { generateWebhookSecret } from '../../src/crypto/secret-box';
import type { Pool } from '../../src/db/pool';
import { handleOnce } from '../../src/outbox/inbox';
import { createTestPool } from '../helpers/db';

describe('the consumer inbox', () => {
  let pool: Pool;
  let consumer: ExampleConsumer;
  const secret = generateWebhookSecret();
  beforeAll(async () => {
    pool = createTestPool();
    consumer = await startExampleConsumer({ pool, secret, consumer: `inbox-${randomUUID().slice(0, 8)}` });
  });
  afterAll(async () => {
    await consumer.close();
    await pool.end();
  });

  function signedPost(webhookId: string, body: string, signWith = secret) {
    const timestamp = new Date();
    return fetch(consumer.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': webhookId,
        'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
        'webhook-signature': new Webhook(signWith).sign(webhookId, timestamp, body),
      },
      body,
    });
  }

  it('applies the effect once when the same event arrives ten times at once', async () => {
    const webhookId = `evt-${randomUUID()}`;
    const before = await consumer.effectCount();
    const body = JSON.stringify({ type: 'operation.succeeded', timestamp: new Date().toISOString(), data: { operationId: 'op-1' } });
    const answers = await Promise.all(Array.from({ length: 10 }, () => signedPost(webhookId, body)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(await consumer.effectCount()).toBe(before + 1);
    const seen = consumer.received.filter((r) => r.webhookId === webhookId);
    expect(seen.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(seen.filter((r) => r.duplicate)).toHaveLength(9);
  });

  it('rejects a delivery whose signature does not verify, and applies nothing', async () => {
    const before = await consumer.effectCount();
    const answer = await signedPost(`evt-${randomUUID()}`, '{"type":"operation.succeeded","data":{}}', generateWebhookSecret());
    expect(answer.status).toBe(401);
    expect(await consumer.effectCount()).toBe(before);
  });

  it('records nothing when the handler fails, so the redelivery applies the effect', async () => {
    const message = { consumer: `inbox-fail-${randomUUID().slice(0, 8)}`, eventId: `evt-${randomUUID()}` };
    await expect(
      handleOnce(pool, message, async (tx) => {
        await tx.query('SELECT 1');
        throw new Error('the effect failed');
      }),
    ).rejects.toThrow('the effect failed');
    let applied = 0;
    expect(await handleOnce(pool, message, async () => ++applied)).toEqual({ duplicate: false, result: 1 });
    expect(await handleOnce(pool, message, async () => ++applied)).toEqual({ duplicate: true });
    expect(applied).toBe(1);
  });

  it('lets two consumers each handle the same event once', async () => {
    const eventId = `evt-${randomUUID()}`;
    const first = await handleOnce(pool, { consumer: `a-${randomUUID().slice(0, 8)}`, eventId }, async () => 'a');
    const second = await handleOnce(pool, { consumer: `b-${randomUUID().slice(0, 8)}`, eventId }, async () => 'b');
    expect([first, second]).toEqual([{ duplicate: false, result: 'a' }, { duplicate: false, result: 'b' }]);
  });
});
