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
  /** Interest registered before the operation's start (watch()); the caller closes it. Default: one registered now. */
  watch?: FinishWatch;
}

/**
 * Interest in one operation's finish: a notification sets a flag that the
 * next sleep consumes, so none is lost between a read and the sleep after it.
 */
export class FinishWatch {
  private notified = false;
  private wake: (() => void) | undefined;

  constructor(
    /** This process was LISTENing when the watch was registered: every finish after that is notified (or lost with the connection, which the poll covers). */
    readonly listeningSinceCreated: boolean,
    private readonly unregister: () => void,
  ) {}

  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  /** Resolves on the next notification (at once if one came since the last call), after `ms`, or when `signal` aborts. */
  next(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.notified || signal?.aborted) {
      this.notified = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.wake = undefined;
        this.notified = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      signal?.addEventListener('abort', done);
    });
  }

  close(): void {
    this.wake = undefined;
    this.unregister();
  }
}

/** For a process whose requests never wait (the doors: waitSeconds is always 0). */
export const neverWaits: Pick<CompletionWaiter, 'waitFor' | 'watch'> = {
  waitFor: async () => undefined,
  watch: () => new FinishWatch(false, () => undefined),
};

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
  private readonly watches = new Map<string, Set<FinishWatch>>();
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
   * `isDone` reads the row: once up front (the operation may have finished
   * before we listened) unless `wait.watch` was registered while LISTEN was
   * live, then on every notification and on every poll.
   */
  async waitFor<T>(operationId: string, timeoutMs: number, isDone: () => Promise<T | undefined>, wait: WaitOptions): Promise<T | undefined> {
    const release = this.admit(wait.tenantId);
    if (!release) return undefined;
    try {
      return await this.waitAdmitted(operationId, timeoutMs, isDone, wait);
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

  /**
   * Registers interest in one operation's finish now, before the work that
   * finishes it is started, so its NOTIFY cannot come before anyone listens.
   * Pass it to waitFor (which then skips the read up front when this process
   * was already LISTENing at this moment), and close it when done.
   */
  watch(operationId: string): FinishWatch {
    this.ensureListening();
    const watch = new FinishWatch(this.client !== undefined, () => {
      const set = this.watches.get(operationId);
      set?.delete(watch);
      if (set?.size === 0) this.watches.delete(operationId);
    });
    const set = this.watches.get(operationId) ?? new Set();
    set.add(watch);
    this.watches.set(operationId, set);
    return watch;
  }

  private async waitAdmitted<T>(operationId: string, timeoutMs: number, isDone: () => Promise<T | undefined>, wait: WaitOptions): Promise<T | undefined> {
    const { signal } = wait;
    if (signal?.aborted) return undefined;
    // Registered for the whole wait, not per sleep: a NOTIFY that arrives
    // while isDone's read is in flight is kept and wakes the next sleep at
    // once, instead of being missed until the next poll.
    const watch = wait.watch ?? this.watch(operationId);
    const deadline = Date.now() + timeoutMs;
    // The read up front covers a finish before anyone listened; a watch
    // registered while LISTEN was live, before the start, has seen every finish since.
    let read = !(wait.watch?.listeningSinceCreated ?? false);
    try {
      for (;;) {
        if (read) {
          const done = await isDone();
          if (done !== undefined) return done;
        }
        read = true;
        const remaining = deadline - Date.now();
        if (remaining <= 0 || signal?.aborted) return undefined;
        await watch.next(Math.min(remaining, this.options.pollIntervalMs ?? 1_000), signal);
        // A client that went away needs no answer: stop reading its row.
        if (signal?.aborted) return undefined;
      }
    } finally {
      if (!wait.watch) watch.close();
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
      for (const watch of this.watches.get(message.payload) ?? []) watch.notify();
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
