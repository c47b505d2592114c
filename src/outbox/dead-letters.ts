import type pg from 'pg';
import { decodeCursor, encodeCursor, type Page } from './page';
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
  /** Rows per page (list) or per call (replay). Default 100, at most MAX_DEAD_LETTERS_PER_CALL. */
  limit?: number;
  /** list only: the `nextCursor` of the page before. */
  cursor?: string;
}

/** The most dead letters one list page or one replay call touches: a replay of a tenant's whole backlog is a loop of bounded calls. */
export const MAX_DEAD_LETTERS_PER_CALL = 1_000;

function where(filter: DeadLetterFilter): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const clauses = ["d.status = 'dead'"];
  if (filter.tenantId) clauses.push(`e.tenant_id = $${params.push(filter.tenantId)}`);
  if (filter.subscriptionId) clauses.push(`d.subscription_id = $${params.push(filter.subscriptionId)}`);
  if (filter.eventId) clauses.push(`d.event_id = $${params.push(filter.eventId)}`);
  return { sql: clauses.join(' AND '), params };
}

/** Dead letters oldest first, a page at a time (keyset on the delivery's creation time, event id, subscription id). */
export async function listDeadLetters(db: Pick<pg.Pool, 'query'>, filter: DeadLetterFilter = {}): Promise<Page<DeadLetter>> {
  const { sql, params } = where(filter);
  const limit = Math.min(filter.limit ?? 100, MAX_DEAD_LETTERS_PER_CALL);
  let after = '';
  if (filter.cursor) {
    const [createdAt, eventId, subscriptionId] = decodeCursor('dead-letters', filter.cursor, 3);
    after = ` AND (d.created_at, d.event_id, d.subscription_id) > ($${params.push(createdAt)}::timestamptz, $${params.push(eventId)}, $${params.push(subscriptionId)}::uuid)`;
  }
  const { rows } = await db.query<{
    event_id: string; subscription_id: string; tenant_id: string; event_type: string; attempts: number; last_error: string | null; created_at: Date; created_at_exact: string;
  }>(
    `SELECT d.event_id, d.subscription_id, e.tenant_id, e.event_type, d.attempts, d.last_error, d.created_at, d.created_at::text AS created_at_exact
       FROM deliveries d JOIN outbox_events e USING (event_id)
      WHERE ${sql}${after} ORDER BY d.created_at, d.event_id, d.subscription_id LIMIT $${params.push(limit + 1)}`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = rows.length > limit ? page[page.length - 1] : undefined;
  return {
    data: page.map((r) => ({
      eventId: r.event_id, subscriptionId: r.subscription_id, tenantId: r.tenant_id, eventType: r.event_type,
      attempts: r.attempts, lastError: r.last_error, createdAt: r.created_at.toISOString(),
    })),
    nextCursor: last ? encodeCursor('dead-letters', [last.created_at_exact, last.event_id, last.subscription_id]) : null,
  };
}

/**
 * Puts up to `limit` dead letters (oldest first; default 100, at most
 * MAX_DEAD_LETTERS_PER_CALL) back in the queue with a fresh attempt budget;
 * the subscriber receives them with their original `webhook-id`. `more`
 * says whether matching dead letters are left for another call. A
 * subscription the relay paused because its subscriber answered 410 is
 * re-enabled: replaying is the operator saying it is back. One the tenant
 * paused through the API stays paused: the replayed deliveries wait as
 * pending until the tenant re-enables it (a replay must not override the
 * tenant's own switch).
 */
export async function replayDeadLetters(db: Pick<pg.Pool, 'query'>, filter: DeadLetterFilter = {}): Promise<{ replayed: number; more: boolean }> {
  const { sql, params } = where(filter);
  const limit = Math.min(filter.limit ?? 100, MAX_DEAD_LETTERS_PER_CALL);
  const { rows } = await db.query<{ subscription_id: string }>(
    `UPDATE deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL
      WHERE (d.event_id, d.subscription_id) IN (
              SELECT d.event_id, d.subscription_id FROM deliveries d JOIN outbox_events e USING (event_id)
               WHERE ${sql} ORDER BY d.created_at LIMIT $${params.push(limit)} FOR UPDATE OF d SKIP LOCKED)
        AND d.status = 'dead'
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
  let more = false;
  if (rows.length === limit) {
    const left = where(filter);
    more = ((await db.query(`SELECT 1 FROM deliveries d JOIN outbox_events e USING (event_id) WHERE ${left.sql} LIMIT 1`, left.params)).rowCount ?? 0) > 0;
  }
  return { replayed: rows.length, more };
}

export async function countPending(db: Pick<pg.Pool, 'query'>): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const { rows } = await db.query<{ pending: number; oldest: number | null }>(
    `SELECT count(*)::int AS pending, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest FROM deliveries WHERE status = 'pending'`,
  );
  return { pending: rows[0]?.pending ?? 0, oldestAgeSeconds: rows[0]?.oldest ?? 0 };
}
