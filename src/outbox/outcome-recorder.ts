import type pg from 'pg';
import type { Logger } from '../observability/logger';
import type { ClaimedDelivery } from './claim';
import type { Decision } from './delivery-policy';
import type { RelayMetrics } from './metrics';
import { DisabledReason } from './subscriptions';

/** What one delivery attempt came to, waiting to be written with others in one statement. */
export interface Outcome extends Decision {
  delivery: ClaimedDelivery;
  /** From the event's commit to the subscriber's answer, by PostgreSQL's clock plus the relay's elapsed time. */
  latencyMs: number;
  /** performance.now() after which this relay stops trying to record it: the lease is about to run out. */
  recordByMs: number;
}

/**
 * Writes a group of outcomes where this relay's lease still holds, pauses a
 * subscription that answered 410, and says for each recorded delivery
 * whether a later event of its operation is pending for the same
 * subscription. Exported with its parameters so a test plans exactly this.
 *
 * The successor check is a scalar subquery ordered like deliveries_order_idx
 * (subscription, operation, seq) with LIMIT 1, not an EXISTS: with statistics
 * from before a burst, EXISTS was planned on the subscription's due index,
 * which visits every pending row of that subscription after this one for
 * each recorded delivery (the outbox benchmark's first runs on a fresh
 * database: 8,462 buffers and 32 ms for 50 outcomes with 6,000 pending; this
 * form: 107 buffers and 0.2 ms, the same plan as with fresh statistics).
 */
export const RECORD_OUTCOMES = `
  WITH outcome AS (
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
            o.verdict <> 'retry' AND (
              SELECT later.seq FROM deliveries later
               WHERE later.subscription_id = d.subscription_id AND later.aggregate_id = d.aggregate_id
                 AND later.seq > d.seq AND later.status = 'pending'
               ORDER BY later.aggregate_id, later.seq
               LIMIT 1) IS NOT NULL AS successor_pending`;

/** The parameters of RECORD_OUTCOMES for a group, in order. */
export function recordOutcomesParameters(relayId: string, group: Outcome[]): unknown[] {
  return [
    relayId,
    group.map((o) => o.delivery.event_id),
    group.map((o) => o.delivery.subscription_id),
    group.map((o) => o.verdict),
    group.map((o) => o.delayMs),
    group.map((o) => o.error),
    DisabledReason.Gone,
  ];
}

export interface OutcomeRecorderOptions {
  pool: pg.Pool;
  relayId: string;
  logger: Logger;
  metrics: RelayMetrics;
  /** A group this large is written without lingering for more. */
  batchSize: number;
  /** Deliveries claimed and not yet settled (on the wire or buffered here): while more are on the wire, a short linger lets them join the statement. */
  unsettled: () => number;
  /** `n` outcomes are done with: recorded, or left to their lease. */
  settle: (n: number) => void;
  /** A recorded delivery released a later event of its operation: claim again now. */
  onSuccessorsDue: () => void;
}

/** How long outcomes wait for others still on the wire before they are written; adds at most this to the publish lag. */
const FLUSH_LINGER_MS = 5;
/** Outcomes written by one statement, at most (the arrays are bound parameters). */
const MAX_OUTCOMES_PER_STATEMENT = 1_000;

/**
 * Writes delivery outcomes in groups (group commit): one statement for every
 * outcome that arrived while the previous statement ran, and counts them in
 * the relay's metrics. The subscriber may already have applied these events:
 * while PostgreSQL is away, keep trying, but only while the lease lasts
 * (`recordByMs`); after that another relay may already be delivering them
 * again, and they are left to it. Outcomes are written only while
 * `locked_by` is still ours, so a relay that outlived its lease cannot
 * overwrite the outcome of the relay that took over.
 */
export class OutcomeRecorder {
  private readonly outcomes: Outcome[] = [];
  private flushing: Promise<void> | undefined;

  constructor(private readonly options: OutcomeRecorderOptions) {}

  add(outcome: Outcome): void {
    this.outcomes.push(outcome);
    this.flushing ??= this.flush();
  }

  /** Resolves when nothing is being written. */
  async idle(): Promise<void> {
    await this.flushing;
  }

  private async flush(): Promise<void> {
    let failures = 0;
    try {
      while (this.outcomes.length > 0) {
        // Other answers are due any moment: let them join this statement
        // rather than commit one row at a time (each commit is a WAL flush,
        // the resource an inbox consumer on the same PostgreSQL needs most).
        // A lone delivery is written at once.
        if (this.outcomes.length < this.options.batchSize && this.options.unsettled() > this.outcomes.length) {
          await new Promise((resolve) => setTimeout(resolve, FLUSH_LINGER_MS));
        }
        const group = this.outcomes.splice(0, MAX_OUTCOMES_PER_STATEMENT);
        try {
          const successorsDue = await this.record(group);
          this.options.settle(group.length);
          failures = 0;
          // A later event of one of these operations was waiting for this
          // outcome: claim it now rather than after a poll interval. Only
          // then: with several relays, a claim after every statement mostly
          // found nothing once a burst was taken, yet walked past every
          // delivery the other relays held leased (a heap visit each).
          if (successorsDue) this.options.onSuccessorsDue();
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
          this.options.settle(expired.length);
          this.outcomes.unshift(...group.filter((o) => o.recordByMs > now));
          if (this.outcomes.length > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(500, 50 * 2 ** failures)));
        }
      }
    } finally {
      // In the same turn as the loop's last check: an outcome added after
      // it finds no flush running and starts one (none is left behind).
      this.flushing = undefined;
    }
  }

  /**
   * Writes a group of outcomes in one statement; resolves with whether a
   * recorded delivery has a later event of its operation still pending for
   * the same subscription (which this outcome may just have released). Read
   * in the statement's snapshot: a later event committed after it was taken
   * sends its own NOTIFY.
   *
   * A 410 (`gone`) dead-letters that delivery and pauses the subscription
   * (status disabled, reason Gone); later events keep being recorded for it
   * as pending deliveries (enqueue.ts), so a resume or a replay delivers them.
   */
  private async record(group: Outcome[]): Promise<boolean> {
    const { metrics } = this.options;
    const { rows } = await this.options.pool.query<{ event_id: string; subscription_id: string; successor_pending: boolean }>(
      RECORD_OUTCOMES,
      recordOutcomesParameters(this.options.relayId, group),
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
