import pg from 'pg';
import type { Logger } from '../observability/logger';
import { OUTBOX_CHANNEL } from './enqueue';

export interface OutboxListenerOptions {
  connectionString: string;
  logger: Logger;
  /** Called for every NOTIFY on the outbox channel, and when the connection is lost (deliveries may have been notified while nobody listened). */
  onSignal: () => void;
}

/**
 * The relay's dedicated LISTEN connection and its lifecycle: opened on
 * demand before each claim, dropped when PostgreSQL ends it, opened again
 * by the next claim. The claim right after a re-LISTEN picks up whatever
 * was notified while nobody listened; until then the relay polls.
 */
export class OutboxListener {
  private client: pg.Client | undefined;

  constructor(private readonly options: OutboxListenerOptions) {}

  /** LISTENs if not already listening; rejects when PostgreSQL cannot be reached (the caller retries). */
  async ensure(): Promise<void> {
    if (this.client) return;
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: 'onceflow-relay-listen' });
    client.on('notification', () => this.options.onSignal());
    const lost = (reason: string) => {
      if (this.client !== client) return;
      this.options.logger.warn({ err: reason }, 'relay LISTEN connection lost; polling until it is back');
      this.client = undefined;
      client.end().catch(() => undefined);
      // Wake the loop so it re-LISTENs now rather than after a long poll interval.
      this.options.onSignal();
    };
    client.on('error', (error) => lost(error.message));
    // A server shutdown may close the socket without an 'error' event.
    client.on('end', () => lost('connection ended'));
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (error) {
      client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
