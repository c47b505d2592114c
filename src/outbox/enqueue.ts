import type pg from 'pg';
import { DisabledReason } from './subscriptions';

export interface OutboxEvent {
  /** Stable id, derived from our own ids (e.g. `<operationId>:operation.succeeded`); the subscriber's `webhook-id`. */
  eventId: string;
  tenantId: string;
  /** Events of one aggregate (an operation) are delivered in the order they were enqueued. */
  aggregateId: string;
  eventType: string;
  payload: unknown;
}

export const OUTBOX_CHANNEL = 'onceflow_outbox';

/**
 * Writes an event and one delivery per matching subscription that is active
 * or paused by its subscriber's 410 Gone. The latter's deliveries wait
 * (the claim takes active subscriptions only) and go out in order when the
 * tenant resumes it or replays its dead letter: a 410 must not make later
 * events vanish without a record. A subscription the tenant paused through
 * the API gets no deliveries while paused: that is the tenant's choice. Takes a
 * transaction client only: the event commits with the state change that caused
 * it or not at all. A repeated event id is ignored (returns false).
 */
export async function enqueueEvent(tx: pg.PoolClient, event: OutboxEvent): Promise<boolean> {
  // One statement (it runs in every finishing transaction): the event, its
  // deliveries (from the event CTE's seq; deliveries' foreign key is checked at
  // the statement's end, when the event row exists) and the NOTIFY, delivered
  // to listening relays at COMMIT; relays also poll, so a lost notification
  // only delays. A repeated event id inserts nothing, so none of the rest runs.
  // No delivery, no NOTIFY: a tenant without subscriptions would otherwise
  // wake every relay for a claim that finds nothing, once per operation.
  const { rows } = await tx.query<{ seq: number }>({
    name: 'onceflow-outbox-enqueue',
    text: `WITH event AS (
       INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (event_id) DO NOTHING
       RETURNING seq),
     delivery AS (
       INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
       SELECT $1, s.subscription_id, $3, event.seq FROM event, subscriptions s
        WHERE s.tenant_id = $2 AND (s.status = 'active' OR s.disabled_reason = $6) AND ($4 = ANY (s.event_types) OR '*' = ANY (s.event_types))
       RETURNING 1)
     SELECT seq, CASE WHEN EXISTS (SELECT 1 FROM delivery) THEN pg_notify($7, $1) END FROM event`,
    values: [event.eventId, event.tenantId, event.aggregateId, event.eventType, JSON.stringify(event.payload), DisabledReason.Gone, OUTBOX_CHANNEL],
  });
  return rows.length > 0;
}
