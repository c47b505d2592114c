import type pg from 'pg';
import { DisabledReason } from './subscriptions';

export interface DeadLetter {
  eventId: string;
  subscriptionId: string;
  tenantId: string;
  eventType: string;
  attempts: number;
  lastError: string | null;
  createdAt: string;
}

export interface DeadLetterFilter {
  tenantId?: string;
  subscriptionId?: string;
  eventId?: string;
  /** Default 100. */
  limit?: number;
}

function where(filter: DeadLetterFilter): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const clauses = ["d.status = 'dead'"];
  if (filter.tenantId) clauses.push(`e.tenant_id = $${params.push(filter.tenantId)}`);
  if (filter.subscriptionId) clauses.push(`d.subscription_id = $${params.push(filter.subscriptionId)}`);
  if (filter.eventId) clauses.push(`d.event_id = $${params.push(filter.eventId)}`);
  return { sql: clauses.join(' AND '), params };
}

export async function listDeadLetters(db: Pick<pg.Pool, 'query'>, filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
  const { sql, params } = where(filter);
  const { rows } = await db.query<{
    event_id: string; subscription_id: string; tenant_id: string; event_type: string; attempts: number; last_error: string | null; created_at: Date;
  }>(
    `SELECT d.event_id, d.subscription_id, e.tenant_id, e.event_type, d.attempts, d.last_error, d.created_at
       FROM deliveries d JOIN outbox_events e USING (event_id)
      WHERE ${sql} ORDER BY d.created_at LIMIT ${Math.min(filter.limit ?? 100, 10_000)}`,
    params,
  );
  return rows.map((r) => ({
    eventId: r.event_id, subscriptionId: r.subscription_id, tenantId: r.tenant_id, eventType: r.event_type,
    attempts: r.attempts, lastError: r.last_error, createdAt: r.created_at.toISOString(),
  }));
}

/**
 * Puts dead letters back in the queue with a fresh attempt budget; the
 * subscriber receives them with their original `webhook-id`. A subscription
 * the relay disabled because its subscriber answered 410 is re-enabled:
 * replaying is the operator saying it is back. One the tenant paused through
 * the API stays paused: the replayed deliveries wait as pending until the
 * tenant re-enables it (a replay must not override the tenant's own switch).
 */
export async function replayDeadLetters(db: Pick<pg.Pool, 'query'>, filter: DeadLetterFilter = {}): Promise<number> {
  const { sql, params } = where(filter);
  const { rows } = await db.query<{ subscription_id: string }>(
    `UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL
       FROM outbox_events e
      WHERE e.event_id = d.event_id AND ${sql}
      RETURNING d.subscription_id`,
    params,
  );
  const subscriptions = [...new Set(rows.map((r) => r.subscription_id))];
  if (subscriptions.length > 0) {
    await db.query(
      `UPDATE subscriptions SET status = 'active', disabled_reason = NULL, updated_at = now()
        WHERE subscription_id = ANY($1) AND status = 'disabled' AND disabled_reason = $2`,
      [subscriptions, DisabledReason.Gone],
    );
    await db.query("SELECT pg_notify('onceflow_outbox', 'replay')");
  }
  return rows.length;
}

export async function countPending(db: Pick<pg.Pool, 'query'>): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const { rows } = await db.query<{ pending: number; oldest: number | null }>(
    `SELECT count(*)::int AS pending, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest FROM deliveries WHERE status = 'pending'`,
  );
  return { pending: rows[0]?.pending ?? 0, oldestAgeSeconds: rows[0]?.oldest ?? 0 };
}
