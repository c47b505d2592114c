import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { Webhook } from 'standardwebhooks';
import type { SecretBox } from '../crypto/secret-box';
import type { Logger } from '../observability/logger';
import type { AddressPolicy } from './address-policy';
import { claimDueDeliveries, leaseMsFor, recordWindowMs, type ClaimedDelivery } from './claim';
import { decideDelivery, type AttemptResult, type DeliveryPolicy } from './delivery-policy';
import { InFlight } from './in-flight';
import { OutboxListener } from './listener';
import type { RelayMetrics } from './metrics';
import { OutcomeRecorder, type Outcome } from './outcome-recorder';
import { signedHeaders, WebhookClient } from './webhook-client';

export interface OutboxRelayOptions extends DeliveryPolicy {
  pool: pg.Pool;
  /** For the dedicated LISTEN connection. */
  connectionString: string;
  secretBox: SecretBox;
  logger: Logger;
  metrics: RelayMetrics;
  /** Which addresses deliveries may connect to (checked on every connection). */
  addressPolicy: AddressPolicy;
  /** Deliveries claimed per statement. Default 200. */
  batchSize?: number;
  /**
   * Deliveries claimed and not yet recorded, at most: the relay claims the next
   * batch while earlier ones are still on the wire or waiting to be recorded.
   * Also the most a crash sends again. Default: see `defaultMaxInFlight`.
   */
  maxInFlight?: number;
  /** ONCEFLOW_MAX_SUBSCRIPTIONS_PER_TENANT: sizes the default maxInFlight. Default 10. */
  maxSubscriptionsPerTenant?: number;
  /**
   * Deliveries on the wire to one subscription, at most: a subscriber that
   * never answers holds this many of the relay's slots, and the claim skips
   * its rows while it is full. Default 64 (= maxConnectionsPerOrigin: more
   * would only queue for a connection).
   */
  maxInFlightPerSubscription?: number;
  /**
   * Connections kept open to one subscriber origin (host and port). Requests
   * beyond it wait for a free one, and the wait counts against their timeout.
   * Default 64.
   */
  maxConnectionsPerOrigin?: number;
  /**
   * A subscription with a delivery on the wire for longer than this, or whose
   * last attempt took longer (a timeout included), is slow and shares the
   * slow lane (in-flight.ts). Default 2000 ms.
   */
  slowAfterMs?: number;
  /**
   * Share of `maxInFlight`, in percent, that deliveries to slow subscriptions
   * may hold in all; the rest stays for subscribers that answer in time,
   * however many slow ones there are. Default 50.
   */
  slowLanePercent?: number;
  /** Polling fallback when no NOTIFY arrives. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Subscriber request timeout, from the claim to the end of the answer. Default 10000 ms. */
  deliveryTimeoutMs?: number;
}

/**
 * Delivers outbox events to subscribers, at least once, with Standard
 * Webhooks signatures. This file is the loop; each job it runs lives in its
 * own module:
 * - claim.ts: the claim statement and the lease (why a lease and not a lock,
 *   how long it lasts); in-flight.ts: how much a relay may hold claimed,
 *   in all, per subscription and in the slow lane;
 * - listener.ts: the LISTEN connection that wakes the loop;
 * - webhook-client.ts: signing and the POST, with the address check on
 *   every connection (address-policy.ts);
 * - delivery-policy.ts: from an answer or error to a verdict and a delay
 *   (pure);
 * - outcome-recorder.ts: writing outcomes in groups, and the metrics.
 *
 * Pipelining: the relay claims the next batch while earlier deliveries are
 * still on the wire, so one slow subscriber holds up only its own
 * deliveries. Outcomes are written in groups, which widens the redelivery
 * window: a relay that dies sends again, after the lease, every delivery it
 * claimed and had not recorded, up to `maxInFlight`, each with its stable
 * `webhook-id`. The inbox drops them.
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
  private readonly deliveryTimeoutMs: number;
  private readonly http: WebhookClient;
  private readonly inFlight: InFlight;
  private readonly listener: OutboxListener;
  private readonly recorder: OutcomeRecorder;
  private running = false;
  /**
   * Set by anything that may have made deliveries due that the claim running
   * now cannot see (a NOTIFY, recorded outcomes, a subscription with room
   * again, the LISTEN connection lost, stop): the next sleep returns at once
   * instead of waiting a poll interval. Cleared just before each claim, whose
   * snapshot then includes the cause.
   */
  private signalled = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: OutboxRelayOptions) {
    this.batchSize = options.batchSize ?? 200;
    this.deliveryTimeoutMs = options.deliveryTimeoutMs ?? 10_000;
    const maxConnectionsPerOrigin = options.maxConnectionsPerOrigin ?? 64;
    this.http = new WebhookClient({ maxConnectionsPerOrigin, addressPolicy: options.addressPolicy });
    const maxPerSubscription = options.maxInFlightPerSubscription ?? maxConnectionsPerOrigin;
    const maxInFlight = Math.max(
      options.maxInFlight ?? defaultMaxInFlight({ batchSize: this.batchSize, maxPerSubscription, maxSubscriptionsPerTenant: options.maxSubscriptionsPerTenant ?? 10 }),
      this.batchSize,
    );
    this.inFlight = new InFlight(maxInFlight, maxPerSubscription, () => this.signal(), {
      slowLaneSlots: Math.floor((maxInFlight * (options.slowLanePercent ?? 50)) / 100),
      slowAfterMs: options.slowAfterMs ?? 2_000,
      // One: what a subscriber that never answers holds before it is known slow.
      probeWindow: 1,
    });
    this.listener = new OutboxListener({ connectionString: options.connectionString, logger: options.logger, onSignal: () => this.signal() });
    this.recorder = new OutcomeRecorder({
      pool: options.pool,
      relayId: this.relayId,
      logger: options.logger,
      metrics: options.metrics,
      batchSize: this.batchSize,
      unsettled: () => this.inFlight.count,
      settle: (n) => this.inFlight.settle(n),
      onSuccessorsDue: () => this.signal(),
    });
  }

  /** See claim.ts, `leaseMsFor`. */
  get leaseMs(): number {
    return leaseMsFor(this.deliveryTimeoutMs);
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
    this.inFlight.release();
    await this.loop;
    await this.inFlight.drain();
    await this.recorder.idle();
    await this.listener.close();
    this.http.close();
  }

  private async run(): Promise<void> {
    const pollIntervalMs = this.options.pollIntervalMs ?? 1_000;
    let failures = 0;
    while (this.running) {
      const room = this.inFlight.room;
      // Claim only once half a batch fits: claiming a row or two per freed
      // slot would spend a statement per delivery.
      if (room < Math.ceil(this.batchSize / 2)) {
        await this.inFlight.waitForRoom();
        continue;
      }
      const limit = Math.min(this.batchSize, room);
      let claimed: Claimed;
      try {
        // Re-LISTENs after a lost connection; the claim right after it picks up
        // whatever was notified while nobody listened.
        await this.listener.ensure();
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

  private async claim(limit: number): Promise<Claimed> {
    // Taken before the statement is sent, so it is never later than the
    // lease's start by PostgreSQL's clock: deadlines derived from it are safe.
    const startedAtMs = performance.now();
    const subscriptionBudgets = this.inFlight.subscriptionBudgets();
    const rows = await claimDueDeliveries(this.options.pool, {
      limit,
      leaseMs: this.leaseMs,
      relayId: this.relayId,
      perSubscription: this.inFlight.unknownSubscriptionBudget,
      subscriptionBudgets,
    });
    this.inFlight.claimed(rows, subscriptionBudgets);
    return { rows, startedAtMs, signers: new Map() };
  }

  private dispatch(delivery: ClaimedDelivery, claimed: Claimed): void {
    const sentAtMs = this.inFlight.sent(delivery.subscription_id);
    this.deliver(delivery, claimed, sentAtMs).then(
      (outcome) => this.recorder.add(outcome),
      (error: unknown) => {
        // deliver() turns every delivery failure into an outcome; this is a bug in it. The lease brings the delivery back.
        this.options.logger.error({ err: (error as Error).message, eventId: delivery.event_id }, 'relay could not finish a delivery attempt');
        this.inFlight.settle(1);
      },
    );
  }

  /** One HTTP attempt; never throws (every failure is an outcome). */
  private async deliver(delivery: ClaimedDelivery, claimed: Claimed, sentAtMs: number): Promise<Outcome> {
    const body = JSON.stringify({ type: delivery.event_type, timestamp: delivery.created_at.toISOString(), data: delivery.payload });
    let result: AttemptResult;
    try {
      // Opened (AES-GCM) and decoded once per subscription per claim, not per event.
      let signer = claimed.signers.get(delivery.secret_sealed);
      if (!signer) {
        signer = new Webhook(this.options.secretBox.open(delivery.secret_sealed));
        claimed.signers.set(delivery.secret_sealed, signer);
      }
      const status = await this.http.post({
        url: delivery.url,
        headers: signedHeaders(signer, delivery.event_id, body),
        body,
        timeoutMs: Math.max(1, claimed.startedAtMs + this.deliveryTimeoutMs - performance.now()),
      });
      result = { answered: true, status };
    } catch (error) {
      result = { answered: false, error };
    } finally {
      this.inFlight.answered(delivery.subscription_id, sentAtMs);
    }
    const answeredAtMs = performance.now();
    const decision = decideDelivery(result, { attempts: delivery.attempts, ageMs: delivery.age_ms }, this.options);
    // The full error (addresses, ports, codes) is for the operator; the tenant sees decision.error, a category.
    const detail = result.answered ? undefined : describe(result.error);
    this.options.logger.info(
      {
        correlationId: delivery.aggregate_id,
        eventId: delivery.event_id,
        subscriptionId: delivery.subscription_id,
        attempt: delivery.attempts,
        outcome: decision.verdict,
        ...(decision.error ? { error: decision.error } : {}),
        ...(detail ? { detail } : {}),
      },
      decision.verdict === 'delivered' ? 'event delivered' : 'event delivery failed',
    );
    return {
      ...decision,
      delivery,
      latencyMs: delivery.age_ms + (answeredAtMs - claimed.startedAtMs),
      recordByMs: claimed.startedAtMs + this.deliveryTimeoutMs + recordWindowMs,
    };
  }
}

/**
 * How many deliveries a relay holds claimed by default: twice a batch, and
 * never less than one tenant's whole share plus a batch. Every subscription
 * may hold `maxPerSubscription` on the wire, and the relay claims again only
 * while half a batch fits; with 2 × 200 = 400 slots, a tenant whose 10
 * subscriptions (the per-tenant cap) all answered slowly held 10 × 64 = 640
 * of them, so the relay stopped claiming for every other tenant until those
 * answers or their timeouts came. Sized like this, one tenant's share leaves
 * a batch for the others; several slow tenants together are bounded by the
 * slow lane (in-flight.ts).
 */
export function defaultMaxInFlight(sizes: { batchSize: number; maxPerSubscription: number; maxSubscriptionsPerTenant: number }): number {
  return Math.max(2 * sizes.batchSize, sizes.maxSubscriptionsPerTenant * sizes.maxPerSubscription + sizes.batchSize);
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return `${e?.message ?? String(error)}${e?.code && !String(e.message).includes(e.code) ? ` (${e.code})` : ''}`;
}

interface Claimed {
  rows: ClaimedDelivery[];
  /** performance.now() when the claim was sent: the lease's start, or a little before it. */
  startedAtMs: number;
  /** Signers opened for this claim, by sealed secret. */
  signers: Map<string, Webhook>;
}
