import type pg from 'pg';

export interface PruneOutboxInput {
  /** Keep rows younger than this. Default: the worker's OUTBOX_RETENTION_DAYS (7). */
  retentionDays?: number;
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
}

export interface PruneOutboxDeps {
  pool: pg.Pool;
  /** OUTBOX_RETENTION_DAYS. Default 7. */
  outboxRetentionDays?: number;
}

/**
 * Deletes, past the retention: dead letters (they were replayable for that
 * long), then outbox events whose every remaining delivery was acknowledged
 * (events with no subscriber at all go too, and so do the events whose only
 * undelivered deliveries were those dead letters: payloads do not outlive
 * their dead letters), and inbox rows. Kept whatever their age: events with
 * a pending delivery (still being retried, or waiting for a paused
 * subscription to be resumed).
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
    const report: PruneOutboxReport = { deadLetters: 0, events: 0, inbox: 0 };
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
