import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import type { SecretBox } from '../crypto/secret-box';
import type { Logger } from '../observability/logger';
import { OUTBOX_CHANNEL } from './enqueue';
import type { RelayMetrics } from './metrics';
import { DisabledReason } from './subscriptions';

export interface OutboxRelayOptions {
  pool: pg.Pool;
  /** For the dedicated LISTEN connection. */
  connectionString: string;
  secretBox: SecretBox;
  logger: Logger;
  metrics: RelayMetrics;
  /** Deliveries claimed per round. Default 50. */
  batchSize?: number;
  /** Polling fallback when no NOTIFY arrives. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Attempts before a delivery is dead-lettered. Default 12. */
  maxAttempts?: number;
  /** Subscriber request timeout, from the claim to the answer. Default 10000 ms. */
  deliveryTimeoutMs?: number;
  /** First retry delay; doubles each attempt, full jitter. Default 1000 ms. */
  retryBaseMs?: number;
  /** Longest retry delay. Default 1 hour. */
  retryCapMs?: number;
  /**
   * A failing delivery is dead-lettered only once it has had `maxAttempts`
   * attempts AND its event is at least this old, so a subscriber that is down
   * for hours loses nothing even when the jittered delays happen to be short.
   * Default 24 hours.
   */
  deadLetterAfterMs?: number;
}

/**
 * How long a relay keeps trying to record an outcome while PostgreSQL is away
 * (restarting, failing over), after the delivery timeout. Part of the lease:
 * see `leaseMs`.
 */
const RECORD_WINDOW_MS = 12_000;
/**
 * Lease time that nothing in the relay spends on purpose: the claim's own
 * round trip, event-loop stalls and GC pauses, timers firing late on a busy
 * machine. Keeps the relay's last record attempt clear of the lease's end.
 */
const LEASE_SLACK_MS = 2_000;

interface ClaimedDelivery {
  event_id: string;
  aggregate_id: string;
  subscription_id: string;
  attempts: number;
  event_type: string;
  payload: unknown;
  created_at: Date;
  /** The event's age at claim time, by PostgreSQL's clock (the relay's may differ). */
  age_ms: number;
  url: string;
  secret_sealed: string;
}

/**
 * Delivers outbox events to subscribers, at least once, with Standard Webhooks signatures.
 *
 * Claiming: one statement picks due deliveries `FOR UPDATE SKIP LOCKED` and
 * leases them (`locked_until`, `locked_by`) before any HTTP call, so two
 * relays never take the same delivery. We lease rather than keep the rows
 * locked in a transaction across the HTTP call because a slow subscriber
 * (up to the delivery timeout) would then pin one connection and one open
 * transaction per batch, and a PostgreSQL restart would abort that
 * transaction and unlock every row the subscribers had already received.
 * The lease covers everything a claimed delivery can take (`leaseMs`): the
 * delivery itself, then the recording of its outcome, retried while
 * PostgreSQL is away; the relay gives up recording just before the lease
 * runs out. If a relay dies after the subscriber received an event but
 * before it recorded it, or cannot record it within the lease, the event
 * goes out again with the same `webhook-id` once the lease has run out; the
 * subscriber's inbox drops the repeat. Outcomes are written only while
 * `locked_by` is still ours, so a relay that outlived its lease cannot
 * overwrite the outcome of the relay that took over.
 *
 * Ordering (promised): per subscription, the events of one aggregate
 * (operation) go out in the order they were written (`seq`): a delivery is not
 * claimed while an earlier one of the same aggregate is still pending for that
 * subscription, retries and backoff included, and event N+1 is only claimed
 * after event N was acknowledged. A dead letter counts as done: it no longer
 * holds later events back (otherwise one poisoned event would stall its
 * operation for good), and replaying it delivers it after its successors.
 * "Written" means committed in seq order: events of one operation are written
 * by the workflow's steps one after another, never by two concurrent
 * transactions. Across operations nothing is ordered.
 */
export class OutboxRelay {
  private readonly relayId = `relay-${randomUUID().slice(0, 8)}`;
  private running = false;
  /**
   * Set by anything that may have made deliveries due that the claim running
   * now cannot see (a NOTIFY, the LISTEN connection lost, stop): the next
   * sleep returns at once instead of waiting a poll interval. Cleared just
   * before each claim, whose snapshot then includes the cause.
   */
  private signalled = false;
  private wake: (() => void) | undefined;
  private listener: pg.Client | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: OutboxRelayOptions) {}

  /**
   * Everything a claimed delivery can take before its outcome is recorded:
   * the delivery (its timeout runs from the claim), then up to
   * RECORD_WINDOW_MS of retrying the record while PostgreSQL is away, plus
   * LEASE_SLACK_MS. The old lease, 2 × timeout + 5 s, was shorter than the
   * recording retries alone for timeouts under ~1 s, so another relay
   * redelivered while this one was still recording.
   */
  get leaseMs(): number {
    return (this.options.deliveryTimeoutMs ?? 10_000) + RECORD_WINDOW_MS + LEASE_SLACK_MS;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.signal();
    await this.loop;
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
  }

  /** Claims and delivers one batch; returns how many deliveries it handled (tests and benchmarks drive this). */
  async deliverBatch(): Promise<number> {
    // Taken before the claim is sent, so it is never later than the lease's
    // start by PostgreSQL's clock: deadlines derived from it are safe.
    const claimedAtMs = performance.now();
    this.signalled = false;
    const claimed = await this.claim();
    await Promise.all(claimed.map((delivery) => this.deliver(delivery, claimedAtMs)));
    return claimed.length;
  }

  private async run(): Promise<void> {
    const pollIntervalMs = this.options.pollIntervalMs ?? 1_000;
    let failures = 0;
    while (this.running) {
      try {
        // Re-LISTENs after a lost connection; the round right after it picks up
        // whatever was notified while nobody listened.
        await this.ensureListening();
        const handled = await this.deliverBatch();
        if (failures > 0) this.options.logger.info({ failures }, 'relay reconnected to PostgreSQL; delivering again');
        failures = 0;
        if (handled > 0) continue;
      } catch (error) {
        // PostgreSQL restarting, a network blip: the pool reconnects on the next
        // checkout. Retry soon (not after a long poll interval), backing off to it.
        failures++;
        this.options.logger.warn({ err: (error as Error).message, failures }, 'relay round failed; retrying');
        await this.sleep(Math.min(pollIntervalMs, 100 * 2 ** Math.min(failures, 10)));
        continue;
      }
      await this.sleep(pollIntervalMs);
    }
  }

  /** Waits `ms`, or less if signalled since the last claim began. */
  private sleep(ms: number): Promise<void> {
    if (this.signalled || !this.running) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.signalled = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private signal(): void {
    this.signalled = true;
    this.wake?.();
  }

  private async ensureListening(): Promise<void> {
    if (this.listener) return;
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: 'onceflow-relay-listen' });
    client.on('notification', () => this.signal());
    const lost = (reason: string) => {
      if (this.listener !== client) return;
      this.options.logger.warn({ err: reason }, 'relay LISTEN connection lost; polling until it is back');
      this.listener = undefined;
      client.end().catch(() => undefined);
      // Wake the loop so it re-LISTENs now rather than after a long poll interval.
      this.signal();
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
    this.listener = client;
  }

  private async claim(): Promise<ClaimedDelivery[]> {
    const { rows } = await this.options.pool.query<ClaimedDelivery>(
      `WITH due AS (
         SELECT d.event_id, d.subscription_id
           FROM deliveries d
           JOIN subscriptions s ON s.subscription_id = d.subscription_id AND s.status = 'active'
          WHERE d.status = 'pending'
            AND d.next_attempt_at <= now()
            AND (d.locked_until IS NULL OR d.locked_until < now())
            AND NOT EXISTS (
                  SELECT 1 FROM deliveries earlier
                   WHERE earlier.subscription_id = d.subscription_id
                     AND earlier.aggregate_id = d.aggregate_id
                     AND earlier.seq < d.seq
                     AND earlier.status = 'pending')
          ORDER BY d.next_attempt_at, d.seq
          LIMIT $1
          FOR UPDATE OF d SKIP LOCKED)
       UPDATE deliveries
          SET locked_until = now() + make_interval(secs => $2 / 1000.0), locked_by = $3, attempts = deliveries.attempts + 1
         FROM due, outbox_events e, subscriptions s
        WHERE deliveries.event_id = due.event_id AND deliveries.subscription_id = due.subscription_id
          AND e.event_id = deliveries.event_id AND s.subscription_id = deliveries.subscription_id
       RETURNING deliveries.event_id, deliveries.aggregate_id, deliveries.subscription_id, deliveries.attempts,
                 e.event_type, e.payload, e.created_at, s.url, s.secret_sealed,
                 (EXTRACT(EPOCH FROM now() - e.created_at) * 1000)::float8 AS age_ms`,
      [this.options.batchSize ?? 50, this.leaseMs, this.relayId],
    );
    return rows;
  }

  private async deliver(delivery: ClaimedDelivery, claimedAtMs: number): Promise<void> {
    const deliveryTimeoutMs = this.options.deliveryTimeoutMs ?? 10_000;
    const body = JSON.stringify({ type: delivery.event_type, timestamp: delivery.created_at.toISOString(), data: delivery.payload });
    let outcome: { ok: true } | { ok: false; status?: number; error: string };
    try {
      const secret = this.options.secretBox.open(delivery.secret_sealed);
      const timestamp = new Date();
      const signature = new Webhook(secret).sign(delivery.event_id, timestamp, body);
      const response = await fetch(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': delivery.event_id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
          'user-agent': 'onceflow-relay',
        },
        body,
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(claimedAtMs + deliveryTimeoutMs - performance.now()))),
      });
      await response.arrayBuffer().catch(() => undefined);
      outcome = response.ok ? { ok: true } : { ok: false, status: response.status, error: `HTTP ${response.status}` };
    } catch (error) {
      const e = error as Error & { cause?: { code?: string } };
      outcome = { ok: false, error: e.name === 'TimeoutError' ? 'timed out' : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ''}` };
    }
    this.options.logger.info(
      {
        correlationId: delivery.aggregate_id,
        eventId: delivery.event_id,
        subscriptionId: delivery.subscription_id,
        attempt: delivery.attempts,
        ...(outcome.ok ? { outcome: 'delivered' } : { outcome: 'failed', error: outcome.error }),
      },
      outcome.ok ? 'event delivered' : 'event delivery failed',
    );
    // The subscriber may already have applied the event. If PostgreSQL is away
    // right now, keep trying to record the outcome, but only while the lease
    // lasts: after that another relay may already be delivering it again.
    const recordByMs = claimedAtMs + deliveryTimeoutMs + RECORD_WINDOW_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.record(delivery, outcome);
        return;
      } catch (error) {
        const waitMs = Math.min(500, 50 * 2 ** attempt);
        if (performance.now() + waitMs >= recordByMs) {
          this.options.logger.warn(
            { err: (error as Error).message, eventId: delivery.event_id, subscriptionId: delivery.subscription_id },
            'could not record a delivery outcome; it goes out again when its lease runs out',
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }

  private async record(delivery: ClaimedDelivery, outcome: { ok: true } | { ok: false; status?: number; error: string }): Promise<void> {
    const { pool, metrics } = this.options;
    const where = 'WHERE event_id = $1 AND subscription_id = $2 AND locked_by = $3';
    const ids = [delivery.event_id, delivery.subscription_id, this.relayId];
    if (outcome.ok) {
      await pool.query(`UPDATE deliveries SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_error = NULL ${where}`, ids);
      metrics.delivered.inc({ event_type: delivery.event_type });
      metrics.latency.observe((Date.now() - delivery.created_at.getTime()) / 1000);
      return;
    }
    if (outcome.status === 410) {
      // 410 Gone: the subscriber asks us to stop. Disable the subscription; its deliveries stay for a replay.
      // Only an active one: a tenant's pause that raced this delivery keeps its reason, so a replay leaves it paused.
      await pool.query(
        `UPDATE subscriptions SET status = 'disabled', disabled_reason = $2, updated_at = now() WHERE subscription_id = $1 AND status = 'active'`,
        [delivery.subscription_id, DisabledReason.Gone],
      );
      await pool.query(`UPDATE deliveries SET status = 'dead', last_error = $4, locked_until = NULL ${where}`, [...ids, 'HTTP 410: subscription disabled']);
      metrics.deadLettered.inc({ reason: 'gone' });
      return;
    }
    if (delivery.attempts >= (this.options.maxAttempts ?? 12) && delivery.age_ms >= (this.options.deadLetterAfterMs ?? 86_400_000)) {
      await pool.query(`UPDATE deliveries SET status = 'dead', last_error = $4, locked_until = NULL ${where}`, [...ids, outcome.error]);
      metrics.deadLettered.inc({ reason: 'attempts' });
      return;
    }
    const delayMs = retryDelayMs(delivery.attempts, this.options.retryBaseMs ?? 1_000, this.options.retryCapMs ?? 3_600_000);
    await pool.query(
      `UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $4 / 1000.0), last_error = $5, locked_until = NULL ${where}`,
      [...ids, delayMs, outcome.error],
    );
    metrics.retried.inc({ reason: outcome.status ? `http_${outcome.status}` : 'network' });
  }
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base·2^(attempt-1))]. */
export function retryDelayMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.round(Math.random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}
