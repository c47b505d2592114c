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
  const { rows } = await tx.query<{ seq: number }>(
    `INSERT INTO outbox_events (event_id, tenant_id, aggregate_id, event_type, payload)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (event_id) DO NOTHING
     RETURNING seq`,
    [event.eventId, event.tenantId, event.aggregateId, event.eventType, JSON.stringify(event.payload)],
  );
  const seq = rows[0]?.seq;
  if (seq === undefined) return false;
  await tx.query(
    `INSERT INTO deliveries (event_id, subscription_id, aggregate_id, seq)
     SELECT $1, subscription_id, $2, $3 FROM subscriptions
      WHERE tenant_id = $4 AND (status = 'active' OR disabled_reason = $6) AND ($5 = ANY (event_types) OR '*' = ANY (event_types))`,
    [event.eventId, event.aggregateId, seq, event.tenantId, event.eventType, DisabledReason.Gone],
  );
  // Delivered to listening relays at COMMIT; relays also poll, so a lost notification only delays.
  await tx.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, event.eventId]);
  return true;
}
