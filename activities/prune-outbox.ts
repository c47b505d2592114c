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
  /** Outbox events deleted (their deliveries go with them, ON DELETE CASCADE). */
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
 * Deletes outbox events older than the retention whose every delivery was
 * acknowledged (events with no subscriber at all go too), and inbox rows older
 * than the retention. Kept whatever their age: events with a pending delivery
 * (still being retried, or waiting for a disabled subscription) and dead
 * letters, which an operator may still replay.
 *
 * The inbox retention is the consumer's dedup window: a redelivery older than
 * it would be applied again. The relay stops retrying long before 7 days
 * (RELAY_DEAD_LETTER_AFTER_MS, default 24 h); a dead letter replayed after the
 * retention may be applied a second time by a consumer that had applied it.
 *
 * Every statement commits on its own: a pass that dies halfway has deleted
 * some rows and the next pass deletes the rest; nothing is half-deleted.
 */
export function createPruneOutbox(deps: PruneOutboxDeps) {
  return async function pruneOutbox(input: PruneOutboxInput = {}): Promise<PruneOutboxReport> {
    const retentionDays = input.retentionDays ?? deps.outboxRetentionDays ?? 7;
    const batchSize = input.batchSize ?? 1000;
    const maxBatches = input.maxBatches ?? 50;
    const report: PruneOutboxReport = { events: 0, inbox: 0 };
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
