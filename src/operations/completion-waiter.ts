import pg from 'pg';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../observability/logger';
import { OPERATION_FINISHED_CHANNEL } from './status';

export interface CompletionWaiterOptions {
  connectionString: string;
  logger: Logger;
  /** How often a waiter re-checks the row when no notification came; default 1000 ms. */
  pollIntervalMs?: number;
  /** Waits one tenant may hold at once (ONCEFLOW_MAX_WAITING_PER_TENANT). Default 20. */
  maxPerTenant?: number;
  /** Waits the process holds at once (ONCEFLOW_MAX_WAITING_PER_PROCESS). Default 500. */
  maxPerProcess?: number;
  /** Where the waiting gauge and the refused counter are registered; default none. */
  metricsRegistry?: Registry;
}

export interface WaitOptions {
  /** Counted against ONCEFLOW_MAX_WAITING_PER_TENANT. */
  tenantId: string;
  /** Aborted when the client went away: the wait ends at once and stops reading the row. */
  signal?: AbortSignal;
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
  private readonly waitingByTenant = new Map<string, number>();
  private waiting = 0;
  private readonly waitingGauge: Gauge | undefined;
  private readonly refused: Counter<'reason'> | undefined;

  constructor(private readonly options: CompletionWaiterOptions) {
    const registers = options.metricsRegistry ? [options.metricsRegistry] : [];
    if (registers.length > 0) {
      this.waitingGauge = new Gauge({ name: 'onceflow_api_waiting_requests', help: 'Requests holding their answer for Prefer: wait right now', registers });
      this.refused = new Counter({
        name: 'onceflow_api_waits_refused_total',
        help: 'Prefer: wait requests answered at once because a waiting cap was reached (reason: tenant or process)',
        labelNames: ['reason'],
        registers,
      });
    }
  }

  /** Requests waiting right now in this process. */
  get waitingCount(): number {
    return this.waiting;
  }

  /**
   * Resolves with `isDone()`'s value once it is defined, or undefined after
   * `timeoutMs`, when the signal aborts, or at once when the tenant or the
   * process already holds its cap of waits (the caller answers as if the wait
   * had elapsed: each wait holds a socket and reads the row every poll, so an
   * unbounded number of them would let one tenant exhaust the process).
   * `isDone` reads the row; it runs once up front (the operation may have
   * finished before we listened), on every notification and on every poll.
   */
  async waitFor<T>(operationId: string, timeoutMs: number, isDone: () => Promise<T | undefined>, wait: WaitOptions): Promise<T | undefined> {
    const release = this.admit(wait.tenantId);
    if (!release) return undefined;
    try {
      return await this.waitAdmitted(operationId, timeoutMs, isDone, wait.signal);
    } finally {
      release();
    }
  }

  private admit(tenantId: string): (() => void) | undefined {
    const ofTenant = this.waitingByTenant.get(tenantId) ?? 0;
    if (ofTenant >= (this.options.maxPerTenant ?? 20)) {
      this.refused?.inc({ reason: 'tenant' });
      return undefined;
    }
    if (this.waiting >= (this.options.maxPerProcess ?? 500)) {
      this.refused?.inc({ reason: 'process' });
      return undefined;
    }
    this.waitingByTenant.set(tenantId, ofTenant + 1);
    this.waiting += 1;
    this.waitingGauge?.set(this.waiting);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.waitingByTenant.get(tenantId) ?? 1) - 1;
      if (left > 0) this.waitingByTenant.set(tenantId, left);
      else this.waitingByTenant.delete(tenantId);
      this.waiting -= 1;
      this.waitingGauge?.set(this.waiting);
    };
  }

  private async waitAdmitted<T>(operationId: string, timeoutMs: number, isDone: () => Promise<T | undefined>, signal: AbortSignal | undefined): Promise<T | undefined> {
    if (signal?.aborted) return undefined;
    this.ensureListening();
    const deadline = Date.now() + timeoutMs;
    let wake: () => void = () => undefined;
    const set = this.waiters.get(operationId) ?? new Set();
    this.waiters.set(operationId, set);
    const onAbort = () => wake();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        const done = await isDone();
        if (done !== undefined) return done;
        const remaining = deadline - Date.now();
        if (remaining <= 0 || signal?.aborted) return undefined;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(remaining, this.options.pollIntervalMs ?? 1_000));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          set.add(wake);
        });
        set.delete(wake);
        // A client that went away needs no answer: stop reading its row.
        if (signal?.aborted) return undefined;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
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
