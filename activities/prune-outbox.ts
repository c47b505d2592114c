import type pg from 'pg';
import { DisabledReason } from '../src/outbox/subscriptions';

export interface PruneOutboxInput {
  /** Keep rows younger than this. Default: the worker's OUTBOX_RETENTION_DAYS (7). */
  retentionDays?: number;
  /** Keep the deliveries of a subscription paused by a 410 younger than this. Default: the worker's OUTBOX_PAUSED_RETENTION_DAYS (7). */
  pausedRetentionDays?: number;
  /** Rows deleted per statement; small batches keep locks short. Default 1000. */
  batchSize?: number;
  /** Statements per table per pass; the next scheduled pass continues. Default 50. */
  maxBatches?: number;
}

export interface PruneOutboxReport {
  /** Dead letters deleted (deliveries that ran out of attempts, older than the retention). */
  deadLetters: number;
  /** Outbox events deleted, payloads included (their deliveries go with them, ON DELETE CASCADE). */
  events: number;
  /** Inbox rows deleted. */
  inbox: number;
  /** Deliveries dropped from subscriptions paused by a 410 past their retention (counted on each subscription). */
  pausedDropped: number;
}

export interface PruneOutboxDeps {
  pool: pg.Pool;
  /** OUTBOX_RETENTION_DAYS. Default 7. */
  outboxRetentionDays?: number;
  /** OUTBOX_PAUSED_RETENTION_DAYS. Default 7. */
  pausedRetentionDays?: number;
}

/**
 * Deletes up to $2 deliveries older than $1 days that wait for a subscription
 * paused by its subscriber's 410 Gone ($3), and adds them to that
 * subscription's droppedEvents in the same statement: a pass that dies
 * midway has either dropped and counted a batch or done neither. The
 * subscription rows are locked with the deliveries, so a resume that commits
 * first takes its deliveries out of the batch (the lock re-checks the
 * status), and a resume that comes after finds them counted. SKIP LOCKED:
 * two passes at once take different rows, none counted twice.
 */
const DROP_PAUSED_DELIVERIES = `
  WITH doomed AS (
    SELECT d.event_id, d.subscription_id
      FROM deliveries d
      JOIN subscriptions s ON s.subscription_id = d.subscription_id
     WHERE s.status = 'disabled' AND s.disabled_reason = $3
       AND d.status = 'pending' AND d.created_at < now() - make_interval(days => $1)
     LIMIT $2
     FOR UPDATE OF d SKIP LOCKED
     -- NO KEY: an enqueue's foreign-key check (KEY SHARE) on the subscription is not held up.
     FOR NO KEY UPDATE OF s SKIP LOCKED),
  dropped AS (
    DELETE FROM deliveries d USING doomed x
     WHERE d.event_id = x.event_id AND d.subscription_id = x.subscription_id
    RETURNING d.subscription_id, d.created_at),
  counted AS (
    UPDATE subscriptions s
       SET dropped_events = s.dropped_events + g.n,
           dropped_first_event_at = LEAST(s.dropped_first_event_at, g.first_at),
           dropped_last_event_at = GREATEST(s.dropped_last_event_at, g.last_at)
      FROM (SELECT subscription_id, count(*) AS n, min(created_at) AS first_at, max(created_at) AS last_at
              FROM dropped GROUP BY subscription_id) g
     WHERE s.subscription_id = g.subscription_id)
  SELECT count(*)::int AS n FROM dropped`;

/**
 * Deletes, past the retention: dead letters (they were replayable for that
 * long), then outbox events whose every remaining delivery was acknowledged
 * (events with no subscriber at all go too, and so do the events whose only
 * undelivered deliveries were those dead letters: payloads do not outlive
 * their dead letters), and inbox rows. Past their own retention
 * (OUTBOX_PAUSED_RETENTION_DAYS), the deliveries waiting for a subscription
 * its subscriber paused with a 410 and nobody resumed: counted on the
 * subscription as they go (DROP_PAUSED_DELIVERIES). Kept whatever their age:
 * events with a pending delivery still being retried, or waiting for a
 * subscription the tenant paused through the API (the tenant's own choice,
 * and no new events are recorded for it).
 *
 * The inbox retention is the consumer's dedup window: a redelivery older than
 * it would be applied again. Dead letters go at the same retention, so a
 * replay can no longer send an event its consumer has already forgotten.
 *
 * Every statement commits on its own: a pass that dies halfway has deleted
 * some rows and the next pass deletes the rest; nothing is half-deleted.
 */
export function createPruneOutbox(deps: PruneOutboxDeps) {
  return async function pruneOutbox(input: PruneOutboxInput = {}): Promise<PruneOutboxReport> {
    const retentionDays = input.retentionDays ?? deps.outboxRetentionDays ?? 7;
    const batchSize = input.batchSize ?? 1000;
    const maxBatches = input.maxBatches ?? 50;
    const pausedRetentionDays = input.pausedRetentionDays ?? deps.pausedRetentionDays ?? 7;
    const report: PruneOutboxReport = { deadLetters: 0, events: 0, inbox: 0, pausedDropped: 0 };
    for (let batch = 0; batch < maxBatches; batch++) {
      const { rowCount } = await deps.pool.query(
        `DELETE FROM deliveries WHERE (event_id, subscription_id) IN (
           SELECT event_id, subscription_id FROM deliveries
            WHERE status = 'dead' AND created_at < now() - make_interval(days => $1)
            LIMIT $2)`,
        [retentionDays, batchSize],
      );
      report.deadLetters += rowCount ?? 0;
      if ((rowCount ?? 0) < batchSize) break;
    }
    // Before the events: an event whose only undelivered delivery was dropped here goes in the same pass.
    for (let batch = 0; batch < maxBatches; batch++) {
      const { rows } = await deps.pool.query<{ n: number }>(DROP_PAUSED_DELIVERIES, [pausedRetentionDays, batchSize, DisabledReason.Gone]);
      report.pausedDropped += rows[0]!.n;
      if (rows[0]!.n < batchSize) break;
    }
    for (let batch = 0; batch < maxBatches; batch++) {
      const { rowCount } = await deps.pool.query(
        `DELETE FROM outbox_events WHERE event_id IN (
           SELECT e.event_id FROM outbox_events e
            WHERE e.created_at < now() - make_interval(days => $1)
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.event_id AND d.status <> 'delivered')
            ORDER BY e.created_at
            LIMIT $2)`,
        [retentionDays, batchSize],
      );
      report.events += rowCount ?? 0;
      if ((rowCount ?? 0) < batchSize) break;
    }
    for (let batch = 0; batch < maxBatches; batch++) {
      const { rowCount } = await deps.pool.query(
        `DELETE FROM inbox WHERE (consumer, event_id) IN (
           SELECT consumer, event_id FROM inbox
            WHERE received_at < now() - make_interval(days => $1)
            ORDER BY received_at
            LIMIT $2)`,
        [retentionDays, batchSize],
      );
      report.inbox += rowCount ?? 0;
      if ((rowCount ?? 0) < batchSize) break;
    }
    return report;
  };
}
