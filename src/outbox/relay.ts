import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import type { SecretBox } from '../crypto/secret-box';
import type { Logger } from '../observability/logger';
import { claimDueDeliveries, type ClaimedDelivery } from './claim';
import { OUTBOX_CHANNEL } from './enqueue';
import type { RelayMetrics } from './metrics';
import { DisabledReason } from './subscriptions';
import { WebhookClient, WebhookTimeoutError } from './webhook-client';

export interface OutboxRelayOptions {
  pool: pg.Pool;
  /** For the dedicated LISTEN connection. */
  connectionString: string;
  secretBox: SecretBox;
  logger: Logger;
  metrics: RelayMetrics;
  /** Deliveries claimed per statement. Default 200. */
  batchSize?: number;
  /**
   * Deliveries claimed and not yet recorded, at most: the relay claims the next
   * batch while earlier ones are still on the wire or waiting to be recorded.
   * Also the most a crash sends again. Default 2 × batchSize.
   */
  maxInFlight?: number;
  /**
   * Connections kept open to one subscriber origin (host and port). Requests
   * beyond it wait for a free one, and the wait counts against their timeout.
   * Default 64.
   */
  maxConnectionsPerOrigin?: number;
  /** Polling fallback when no NOTIFY arrives. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Attempts before a delivery is dead-lettered. Default 12. */
  maxAttempts?: number;
  /** Subscriber request timeout, from the claim to the end of the answer. Default 10000 ms. */
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

/** What one delivery attempt came to, waiting to be written with others in one statement. */
interface Outcome {
  delivery: ClaimedDelivery;
  verdict: 'delivered' | 'retry' | 'dead' | 'gone';
  /** For `retry`: the backoff before the next attempt. */
  delayMs: number;
  /** Stored as `last_error`; null when delivered. */
  error: string | null;
  /** For metrics: http_<status> or network. */
  reason: string;
  /** From the event's commit to the subscriber's answer, by PostgreSQL's clock plus the relay's elapsed time. */
  latencyMs: number;
  /** performance.now() after which this relay stops trying to record it: the lease is about to run out. */
  recordByMs: number;
}

/**
 * How long a relay keeps trying to record outcomes while PostgreSQL is away
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
/** How long outcomes wait for others still on the wire before they are written; adds at most this to the publish lag. */
const FLUSH_LINGER_MS = 5;
/** Outcomes written by one statement, at most (the arrays are bound parameters). */
const MAX_OUTCOMES_PER_STATEMENT = 1_000;

/**
 * Delivers outbox events to subscribers, at least once, with Standard Webhooks signatures.
 *
 * Claiming (claim.ts): one statement picks due deliveries `FOR UPDATE SKIP LOCKED` and
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
 * Pipelining: the relay claims the next batch while earlier deliveries are
 * still on the wire, so one slow subscriber holds up only its own
 * deliveries. Outcomes are written in groups, one statement for every
 * outcome that arrived while the previous statement ran (group commit).
 * That widens the redelivery window: a relay that dies sends again, after
 * the lease, every delivery it claimed and had not recorded. With one UPDATE
 * per answer those were only the deliveries still on the wire; now they
 * include the answered ones waiting for their group's statement: up to
 * `maxInFlight` in all (the relay never holds more claimed and unrecorded),
 * each with its stable `webhook-id`. The inbox drops them.
 *
 * Ordering (promised): per subscription, the events of one aggregate
 * (operation) go out in the order they were written (`seq`): a delivery is not
 * claimed while an earlier one of the same aggregate is still pending for that
 * subscription, retries, backoff and deliveries in flight included, and event
 * N+1 is only claimed after event N was acknowledged and recorded. A dead
 * letter counts as done: it no longer holds later events back (otherwise one
 * poisoned event would stall its operation for good), and replaying it
 * delivers it after its successors. "Written" means committed in seq order:
 * events of one operation are written by the workflow's steps one after
 * another, never by two concurrent transactions. Across operations nothing is
 * ordered.
 */
export class OutboxRelay {
  private readonly relayId = `relay-${randomUUID().slice(0, 8)}`;
  private readonly batchSize: number;
  private readonly maxInFlight: number;
  private readonly deliveryTimeoutMs: number;
  private readonly http: WebhookClient;
  private running = false;
  /**
   * Set by anything that may have made deliveries due that the claim running
   * now cannot see (a NOTIFY, recorded outcomes, the LISTEN connection lost,
   * stop): the next sleep returns at once instead of waiting a poll interval.
   * Cleared just before each claim, whose snapshot then includes the cause.
   */
  private signalled = false;
  private wake: (() => void) | undefined;
  /** Resolved when outcomes are recorded (or given up) while the loop waits for room. */
  private roomFreed: (() => void) | undefined;
  /**
   * Deliveries claimed whose outcome is not recorded yet (on the wire, or
   * waiting for the statement that records it): what a crash now would send
   * again after the lease. Bounded by maxInFlight.
   */
  private unrecorded = 0;
  /** Resolved when `unrecorded` reaches 0 while stop() waits for it. */
  private drained: (() => void) | undefined;
  private readonly outcomes: Outcome[] = [];
  private flushing: Promise<void> | undefined;
  private listener: pg.Client | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: OutboxRelayOptions) {
    this.batchSize = options.batchSize ?? 200;
    this.maxInFlight = Math.max(options.maxInFlight ?? this.batchSize * 2, this.batchSize);
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? 10_000;
    this.http = new WebhookClient({ maxConnectionsPerOrigin: options.maxConnectionsPerOrigin ?? 64 });
  }

  /**
   * Everything a claimed delivery can take before its outcome is recorded:
   * the delivery (its timeout runs from the claim, so waiting for a
   * connection counts), then up to RECORD_WINDOW_MS of writing the outcome
   * (waiting behind the statement before it, retries while PostgreSQL is
   * away), plus LEASE_SLACK_MS. The old lease, 2 × timeout + 5 s, was shorter
   * than the recording retries alone for timeouts under ~1 s, so another
   * relay redelivered while this one was still recording.
   */
  get leaseMs(): number {
    return this.deliveryTimeoutMs + RECORD_WINDOW_MS + LEASE_SLACK_MS;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming, lets the deliveries in flight finish and records them, then closes. */
  async stop(): Promise<void> {
    this.running = false;
    this.signal();
    this.roomFreed?.();
    await this.loop;
    // Bounded: every delivery times out, and recording gives up at its lease.
    if (this.unrecorded > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.flushing;
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
    this.http.close();
  }

  private async run(): Promise<void> {
    const pollIntervalMs = this.options.pollIntervalMs ?? 1_000;
    let failures = 0;
    while (this.running) {
      const room = this.maxInFlight - this.unrecorded;
      // Claim only once half a batch fits: claiming a row or two per freed
      // slot would spend a statement per delivery.
      if (room < Math.ceil(this.batchSize / 2)) {
        await new Promise<void>((resolve) => (this.roomFreed = resolve));
        this.roomFreed = undefined;
        continue;
      }
      const limit = Math.min(this.batchSize, room);
      let claimed: Claimed;
      try {
        // Re-LISTENs after a lost connection; the claim right after it picks up
        // whatever was notified while nobody listened.
        await this.ensureListening();
        this.signalled = false;
        claimed = await this.claim(limit);
      } catch (error) {
        // PostgreSQL restarting, a network blip: the pool reconnects on the next
        // checkout. Retry soon (not after a long poll interval), backing off to it.
        failures++;
        this.options.logger.warn({ err: (error as Error).message, failures }, 'relay round failed; retrying');
        await this.pause(Math.min(pollIntervalMs, 100 * 2 ** Math.min(failures, 10)));
        continue;
      }
      if (failures > 0) this.options.logger.info({ failures }, 'relay reconnected to PostgreSQL; delivering again');
      failures = 0;
      for (const delivery of claimed.rows) this.dispatch(delivery, claimed);
      // A full batch: more may be due right now.
      if (claimed.rows.length === limit) continue;
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

  /** Waits `ms` regardless of notifications (after a failure); only stop() cuts it short. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = () => {
        if (!this.running) done();
      };
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

  private async claim(limit: number): Promise<Claimed> {
    // Taken before the statement is sent, so it is never later than the
    // lease's start by PostgreSQL's clock: deadlines derived from it are safe.
    const startedAtMs = performance.now();
    const rows = await claimDueDeliveries(this.options.pool, { limit, leaseMs: this.leaseMs, relayId: this.relayId });
    return { rows, startedAtMs, webhooks: new Map() };
  }

  private dispatch(delivery: ClaimedDelivery, claimed: Claimed): void {
    this.unrecorded++;
    this.deliver(delivery, claimed).then(
      (outcome) => this.enqueue(outcome),
      (error: unknown) => {
        // deliver() turns every delivery failure into an outcome; this is a bug in it. The lease brings the delivery back.
        this.options.logger.error({ err: (error as Error).message, eventId: delivery.event_id }, 'relay could not finish a delivery attempt');
        this.settle(1);
      },
    );
  }

  /** One HTTP attempt; never throws (every failure is an outcome). */
  private async deliver(delivery: ClaimedDelivery, claimed: Claimed): Promise<Outcome> {
    const body = JSON.stringify({ type: delivery.event_type, timestamp: delivery.created_at.toISOString(), data: delivery.payload });
    let result: { ok: true } | { ok: false; status?: number; error: string };
    try {
      // Opened (AES-GCM) and decoded once per subscription per claim, not per event.
      let webhook = claimed.webhooks.get(delivery.secret_sealed);
      if (!webhook) {
        webhook = new Webhook(this.options.secretBox.open(delivery.secret_sealed));
        claimed.webhooks.set(delivery.secret_sealed, webhook);
      }
      const timestamp = new Date();
      const status = await this.http.post({
        url: delivery.url,
        headers: {
          'content-type': 'application/json',
          'webhook-id': delivery.event_id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': webhook.sign(delivery.event_id, timestamp, body),
          'user-agent': 'onceflow-relay',
        },
        body,
        timeoutMs: Math.max(1, claimed.startedAtMs + this.deliveryTimeoutMs - performance.now()),
      });
      result = status >= 200 && status < 300 ? { ok: true } : { ok: false, status, error: `HTTP ${status}` };
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      result = {
        ok: false,
        error:
          e instanceof WebhookTimeoutError
            ? e.sent
              ? 'timed out'
              : 'timed out waiting for a free connection to the subscriber (not sent)'
            : `${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`,
      };
    }
    const answeredAtMs = performance.now();
    this.options.logger.info(
      {
        correlationId: delivery.aggregate_id,
        eventId: delivery.event_id,
        subscriptionId: delivery.subscription_id,
        attempt: delivery.attempts,
        ...(result.ok ? { outcome: 'delivered' } : { outcome: 'failed', error: result.error }),
      },
      result.ok ? 'event delivered' : 'event delivery failed',
    );
    const common = {
      delivery,
      latencyMs: delivery.age_ms + (answeredAtMs - claimed.startedAtMs),
      recordByMs: claimed.startedAtMs + this.deliveryTimeoutMs + RECORD_WINDOW_MS,
      delayMs: 0,
    };
    if (result.ok) return { ...common, verdict: 'delivered', error: null, reason: 'delivered' };
    const reason = result.status ? `http_${result.status}` : 'network';
    // 410 Gone: the subscriber asks us to stop. The subscription is disabled; its deliveries stay for a replay.
    if (result.status === 410) return { ...common, verdict: 'gone', error: 'HTTP 410: subscription disabled', reason: 'gone' };
    if (delivery.attempts >= (this.options.maxAttempts ?? 12) && delivery.age_ms >= (this.options.deadLetterAfterMs ?? 86_400_000)) {
      return { ...common, verdict: 'dead', error: result.error, reason: 'attempts' };
    }
    const delayMs = retryDelayMs(delivery.attempts, this.options.retryBaseMs ?? 1_000, this.options.retryCapMs ?? 3_600_000);
    return { ...common, verdict: 'retry', delayMs, error: result.error, reason };
  }

  private enqueue(outcome: Outcome): void {
    this.outcomes.push(outcome);
    this.flushing ??= this.flush();
  }

  /**
   * Writes buffered outcomes, one statement for all that arrived while the
   * previous one ran. The subscriber may already have applied these events:
   * while PostgreSQL is away, keep trying, but only while the lease lasts
   * (`recordByMs`); after that another relay may already be delivering them
   * again, and they are left to it.
   */
  private async flush(): Promise<void> {
    let failures = 0;
    try {
      while (this.outcomes.length > 0) {
        // Other answers are due any moment: let them join this statement
        // rather than commit one row at a time (each commit is a WAL flush,
        // the resource an inbox consumer on the same PostgreSQL needs most).
        // A lone delivery is written at once.
        if (this.outcomes.length < this.batchSize && this.unrecorded > this.outcomes.length) {
          await new Promise((resolve) => setTimeout(resolve, FLUSH_LINGER_MS));
        }
        const group = this.outcomes.splice(0, MAX_OUTCOMES_PER_STATEMENT);
        try {
          const successorsDue = await this.record(group);
          this.settle(group.length);
          failures = 0;
          // A later event of one of these operations was waiting for this
          // outcome: claim it now rather than after a poll interval. Only
          // then: with several relays, a claim after every statement mostly
          // found nothing once a burst was taken, yet walked past every
          // delivery the other relays held leased (a heap visit each).
          if (successorsDue) this.signal();
        } catch (error) {
          failures++;
          const now = performance.now();
          const expired = group.filter((o) => o.recordByMs <= now);
          for (const o of expired) {
            this.options.logger.warn(
              { err: (error as Error).message, eventId: o.delivery.event_id, subscriptionId: o.delivery.subscription_id },
              'could not record a delivery outcome; it goes out again when its lease runs out',
            );
          }
          this.settle(expired.length);
          this.outcomes.unshift(...group.filter((o) => o.recordByMs > now));
          if (this.outcomes.length > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(500, 50 * 2 ** failures)));
        }
      }
    } finally {
      // In the same turn as the loop's last check: an outcome enqueued after
      // it finds no flush running and starts one (none is left behind).
      this.flushing = undefined;
    }
  }

  /** `n` claimed deliveries are done with: recorded, or left to their lease. */
  private settle(n: number): void {
    if (n === 0) return;
    this.unrecorded -= n;
    this.roomFreed?.();
    if (this.unrecorded === 0) this.drained?.();
  }

  /**
   * Writes a group of outcomes in one statement; resolves with whether a
   * recorded delivery has a later event of its operation still pending for
   * the same subscription (which this outcome may just have released). Read
   * in the statement's snapshot: a later event committed after it was taken
   * sends its own NOTIFY.
   */
  private async record(group: Outcome[]): Promise<boolean> {
    const { metrics } = this.options;
    const { rows } = await this.options.pool.query<{ event_id: string; subscription_id: string; successor_pending: boolean }>(
      `WITH outcome AS (
         SELECT * FROM unnest($2::text[], $3::uuid[], $4::text[], $5::float8[], $6::text[])
                    AS o (event_id, subscription_id, verdict, delay_ms, error)),
       gone AS (
         -- Only an active one: a tenant's pause that raced this delivery keeps its reason, so a replay leaves it paused.
         UPDATE subscriptions s SET status = 'disabled', disabled_reason = $7, updated_at = now()
          WHERE s.subscription_id IN (SELECT subscription_id FROM outcome WHERE verdict = 'gone') AND s.status = 'active')
       UPDATE deliveries d
          SET status = CASE o.verdict WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'pending' ELSE 'dead' END,
              delivered_at = CASE WHEN o.verdict = 'delivered' THEN now() ELSE d.delivered_at END,
              next_attempt_at = CASE WHEN o.verdict = 'retry' THEN now() + make_interval(secs => o.delay_ms / 1000.0) ELSE d.next_attempt_at END,
              last_error = o.error,
              locked_until = NULL
         FROM outcome o
        WHERE d.event_id = o.event_id AND d.subscription_id = o.subscription_id AND d.locked_by = $1
       RETURNING d.event_id, d.subscription_id,
                 -- A retried delivery still holds its successors back.
                 o.verdict <> 'retry' AND EXISTS (
                   SELECT 1 FROM deliveries later
                    WHERE later.subscription_id = d.subscription_id AND later.aggregate_id = d.aggregate_id
                      AND later.seq > d.seq AND later.status = 'pending') AS successor_pending`,
      [
        this.relayId,
        group.map((o) => o.delivery.event_id),
        group.map((o) => o.delivery.subscription_id),
        group.map((o) => o.verdict),
        group.map((o) => o.delayMs),
        group.map((o) => o.error),
        DisabledReason.Gone,
      ],
    );
    // Counted only where our lease still held: another relay's outcome is its to count.
    const recorded = new Set(rows.map((r) => `${r.event_id} ${r.subscription_id}`));
    for (const o of group) {
      if (!recorded.has(`${o.delivery.event_id} ${o.delivery.subscription_id}`)) {
        this.options.logger.warn(
          { eventId: o.delivery.event_id, subscriptionId: o.delivery.subscription_id },
          'delivery outcome not recorded: the lease ran out and another relay took the delivery over',
        );
        continue;
      }
      if (o.verdict === 'delivered') {
        metrics.delivered.inc({ event_type: o.delivery.event_type });
        metrics.latency.observe(o.latencyMs / 1000);
      } else if (o.verdict === 'retry') {
        metrics.retried.inc({ reason: o.reason });
      } else {
        metrics.deadLettered.inc({ reason: o.reason });
      }
    }
    return rows.some((r) => r.successor_pending);
  }
}

interface Claimed {
  rows: ClaimedDelivery[];
  /** performance.now() when the claim was sent: the lease's start, or a little before it. */
  startedAtMs: number;
  /** Signers opened for this claim, by sealed secret. */
  webhooks: Map<string, Webhook>;
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base·2^(attempt-1))]. */
export function retryDelayMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.round(Math.random() * Math.min(capMs, baseMs * 2 ** (attempt - 1)));
}
