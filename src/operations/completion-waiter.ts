import pg from 'pg';
import type { Logger } from '../observability/logger';
import { OPERATION_FINISHED_CHANNEL } from './status';

export interface CompletionWaiterOptions {
  connectionString: string;
  logger: Logger;
  /** How often a waiter re-checks the row when no notification came; default 1000 ms. */
  pollIntervalMs?: number;
}

/**
 * Lets `Prefer: wait=N` requests sleep until their operation finishes. One
 * LISTEN connection per API process serves every waiter; the finishing
 * transaction NOTIFYs at COMMIT. Notifications can be lost (connection drop,
 * restart), so each waiter also re-checks on a timer: a lost NOTIFY only delays.
 */
export class CompletionWaiter {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly options: CompletionWaiterOptions) {}

  /**
   * Resolves with `isDone()`'s value once it is defined, or undefined after
   * `timeoutMs`. `isDone` reads the row; it runs once up front (the operation
   * may have finished before we listened), on every notification and on every poll.
   */
  async waitFor<T>(operationId: string, timeoutMs: number, isDone: () => Promise<T | undefined>): Promise<T | undefined> {
    this.ensureListening();
    const deadline = Date.now() + timeoutMs;
    let wake: () => void = () => undefined;
    const set = this.waiters.get(operationId) ?? new Set();
    this.waiters.set(operationId, set);
    try {
      for (;;) {
        const done = await isDone();
        if (done !== undefined) return done;
        const remaining = deadline - Date.now();
        if (remaining <= 0) return undefined;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(remaining, this.options.pollIntervalMs ?? 1_000));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          set.add(wake);
        });
        set.delete(wake);
      }
    } finally {
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(operationId);
    }
  }

  private ensureListening(): void {
    if (this.client || this.connecting || this.closed) return;
    this.connecting = this.listen()
      .catch((error: Error) => this.options.logger.warn({ err: error.message }, 'LISTEN failed; waiters fall back to polling'))
      .finally(() => (this.connecting = undefined));
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: 'onceflow-api-listen' });
    client.on('notification', (message) => {
      if (!message.payload) return;
      for (const wake of this.waiters.get(message.payload) ?? []) wake();
    });
    client.on('error', (error) => {
      this.options.logger.warn({ err: error.message }, 'LISTEN connection lost; reconnecting on the next wait');
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
    });
    await client.connect();
    await client.query(`LISTEN ${OPERATION_FINISHED_CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.connecting;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}
