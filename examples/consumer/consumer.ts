/**
 * An example subscriber: verifies Standard Webhooks signatures and applies
 * each event's effect exactly once with Onceflow's inbox (src/outbox/inbox.ts):
 * the inbox row and the effect commit together, so a redelivery does nothing.
 * The effect here is a row in `example_consumer_effects`; a real consumer would
 * send the email, credit the account, and so on, in the same transaction.
 */
import http from 'node:http';
import type pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { handleOnce } from '../../src/outbox/inbox';

export interface ExampleConsumerOptions {
  pool: pg.Pool;
  /** The subscription's `whsec_…` secret. */
  secret: string;
  port?: number;
  /** Inbox consumer name; default `example-consumer`. */
  consumer?: string;
}

export interface ReceivedDelivery {
  webhookId: string;
  eventType: string;
  duplicate: boolean;
}

export interface ExampleConsumer {
  url: string;
  /** Every delivery that passed the signature check, duplicates included. */
  received: ReceivedDelivery[];
  /** Answer the next N requests with this status (tests: 500, 410). */
  failNext(status: number, times?: number): void;
  /** Apply the effect, then hold the answer until released (tests kill the relay meanwhile). */
  holdNext(): { released: () => void; arrived: Promise<void> };
  /** Never answer the next N requests (tests: subscriber timeout). */
  stallNext(times?: number): void;
  /** Effects applied (rows in the effects table) for this consumer. */
  effectCount(): Promise<number>;
  close(): Promise<void>;
}

export async function ensureExampleConsumerSchema(pool: pg.Pool): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS example_consumer_effects (
    consumer text NOT NULL, event_id text NOT NULL, event_type text NOT NULL, operation_id text,
    applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id))`);
}

export async function startExampleConsumer(options: ExampleConsumerOptions): Promise<ExampleConsumer> {
  await ensureExampleConsumerSchema(options.pool);
  const consumer = options.consumer ?? 'example-consumer';
  const webhook = new Webhook(options.secret);
  const received: ReceivedDelivery[] = [];
  const failures: number[] = [];
  let stalls = 0;
  let hold: { release: Promise<void>; arrived: () => void } | undefined;

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let event: { type: string; data: { operationId?: string } };
        try {
          event = webhook.verify(body, request.headers as Record<string, string>) as typeof event;
        } catch {
          response.writeHead(401).end('bad signature');
          return;
        }
        if (stalls > 0) {
          stalls--;
          return; // never answers
        }
        const failure = failures.shift();
        if (failure !== undefined) {
          response.writeHead(failure).end();
          return;
        }
        const webhookId = String(request.headers['webhook-id']);
        const outcome = await handleOnce(options.pool, { consumer, eventId: webhookId }, (tx) =>
          tx.query('INSERT INTO example_consumer_effects (consumer, event_id, event_type, operation_id) VALUES ($1, $2, $3, $4)', [
            consumer, webhookId, event.type, event.data?.operationId ?? null,
          ]),
        );
        received.push({ webhookId, eventType: event.type, duplicate: outcome.duplicate });
        if (hold) {
          const current = hold;
          hold = undefined;
          current.arrived();
          await current.release;
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      })().catch(() => {
        if (!response.headersSent) response.writeHead(500).end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/webhooks`,
    received,
    failNext: (status, times = 1) => failures.push(...Array.from({ length: times }, () => status)),
    stallNext: (times = 1) => (stalls += times),
    holdNext: () => {
      let released!: () => void;
      let arrived!: () => void;
      const release = new Promise<void>((resolve) => (released = resolve));
      const arrivedPromise = new Promise<void>((resolve) => (arrived = resolve));
      hold = { release, arrived };
      return { released, arrived: arrivedPromise };
    },
    effectCount: async () =>
      Number((await options.pool.query('SELECT count(*) FROM example_consumer_effects WHERE consumer = $1', [consumer])).rows[0].count),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
