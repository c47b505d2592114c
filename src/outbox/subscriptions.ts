import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { generateWebhookSecret, type SecretBox } from '../crypto/secret-box';
import { withTransaction } from '../db/transaction';
import { decodeCursor, encodeCursor, type Page } from './page';
import { AppError } from '../errors';

/**
 * Why a subscription is disabled, as stored in `disabled_reason`. A dead-letter
 * replay re-enables only `Gone` (the relay's doing); `Api` is the tenant's own
 * pause and stays until the tenant lifts it.
 */
export const DisabledReason = {
  /**
   * Paused by the relay. Unlike the tenant's pause, events keep being
   * recorded for it as pending deliveries (enqueue.ts), so a resume or a
   * replay delivers every event since. Those older than
   * OUTBOX_PAUSED_RETENTION_DAYS are dropped by the outbox prune and counted
   * on the subscription (droppedEvents): nothing is skipped without a record.
   */
  Gone: 'subscriber answered 410 Gone',
  Api: 'disabled through the API',
} as const;
export type DisabledReason = (typeof DisabledReason)[keyof typeof DisabledReason];

export interface Subscription {
  id: string;
  url: string;
  eventTypes: string[];
  status: 'active' | 'disabled';
  disabledReason: string | null;
  createdAt: string;
  /**
   * Events never delivered to this subscription because it stayed paused by
   * its subscriber's 410 past OUTBOX_PAUSED_RETENTION_DAYS and the outbox
   * prune deleted their deliveries: how many, and the creation time of the
   * oldest and newest of them (null while none was dropped).
   */
  droppedEvents: { count: number; firstEventAt: string | null; lastEventAt: string | null };
}

interface Row {
  subscription_id: string; url: string; event_types: string[]; status: 'active' | 'disabled';
  disabled_reason: string | null; created_at: Date;
  /** bigint: pg returns it as a string. */
  dropped_events: string; dropped_first_event_at: Date | null; dropped_last_event_at: Date | null;
  /** Only from listSubscriptions: created_at as text, to the microsecond. */
  created_at_exact: string;
}

const toSubscription = (row: Row): Subscription => ({
  id: row.subscription_id,
  url: row.url,
  eventTypes: row.event_types,
  status: row.status,
  disabledReason: row.disabled_reason,
  createdAt: row.created_at.toISOString(),
  droppedEvents: {
    count: Number(row.dropped_events),
    firstEventAt: row.dropped_first_event_at?.toISOString() ?? null,
    lastEventAt: row.dropped_last_event_at?.toISOString() ?? null,
  },
});

/** Thrown when a tenant already has its configured number of subscriptions. */
export class SubscriptionLimitError extends AppError<{ tenantId: string; limit: number }> {
  override readonly name = 'SubscriptionLimitError';
  constructor(readonly tenantId: string, readonly limit: number) {
    super(`tenant ${tenantId} already has ${limit} subscriptions`, { context: { tenantId, limit } });
  }
}

/**
 * Creates a subscription; the signing secret is returned once and stored
 * sealed. At most `maxPerTenant` per tenant: the tenant's row is locked for
 * the count and the insert, so two concurrent creates cannot both take the
 * last place. Throws SubscriptionLimitError beyond it.
 */
export async function createSubscription(
  pool: pg.Pool,
  secretBox: SecretBox,
  input: { tenantId: string; url: string; eventTypes: string[]; maxPerTenant?: number },
): Promise<Subscription & { secret: string }> {
  const secret = generateWebhookSecret();
  return withTransaction(pool, async (tx) => {
    if (input.maxPerTenant !== undefined) {
      const { rows } = await tx.query<{ n: number }>(
        `SELECT (SELECT count(*)::int FROM subscriptions WHERE tenant_id = t.tenant_id) AS n
           FROM tenants t WHERE t.tenant_id = $1 FOR UPDATE`,
        [input.tenantId],
      );
      if ((rows[0]?.n ?? 0) >= input.maxPerTenant) throw new SubscriptionLimitError(input.tenantId, input.maxPerTenant);
    }
    const { rows } = await tx.query<Row>(
      `INSERT INTO subscriptions (subscription_id, tenant_id, url, secret_sealed, event_types)
       VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [randomUUID(), input.tenantId, input.url, secretBox.seal(secret), input.eventTypes],
    );
    return { ...toSubscription(rows[0]!), secret };
  });
}

/** A tenant's subscriptions, oldest first, `limit` a page (keyset on creation time and id). */
export async function listSubscriptions(
  db: Pick<pg.Pool, 'query'>,
  tenantId: string,
  page: { limit?: number; cursor?: string } = {},
): Promise<Page<Subscription>> {
  const limit = Math.min(page.limit ?? 50, 100);
  const after = page.cursor ? decodeCursor('subscriptions', page.cursor, 2) : undefined;
  const { rows } = await db.query<Row>(
    `SELECT *, created_at::text AS created_at_exact FROM subscriptions
      WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, subscription_id) > ($2::timestamptz, $3::uuid))
      ORDER BY created_at, subscription_id LIMIT $4`,
    [tenantId, after?.[0] ?? null, after?.[1] ?? null, limit + 1],
  );
  const data = rows.slice(0, limit);
  const last = rows.length > limit ? data[data.length - 1] : undefined;
  return {
    data: data.map(toSubscription),
    // Microseconds kept: a Date would round created_at to ms and repeat or skip rows created in the same ms.
    nextCursor: last ? encodeCursor('subscriptions', [last.created_at_exact, last.subscription_id]) : null,
  };
}

/** Deletes a tenant's subscription and its undelivered deliveries; false when it is not theirs or unknown. */
export async function deleteSubscription(db: Pick<pg.Pool, 'query'>, tenantId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM subscriptions WHERE tenant_id = $1 AND subscription_id = $2', [tenantId, id]);
  return (rowCount ?? 0) > 0;
}

export async function getSubscription(db: Pick<pg.Pool, 'query'>, tenantId: string, id: string): Promise<Subscription | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM subscriptions WHERE tenant_id = $1 AND subscription_id = $2', [tenantId, id]);
  return rows[0] ? toSubscription(rows[0]) : undefined;
}

export interface SubscriptionChanges {
  url?: string;
  eventTypes?: string[];
  /**
   * `active` re-enables a subscription (e.g. one disabled by a 410): its
   * pending deliveries resume; its dead letters need a replay. `disabled`
   * pauses it: deliveries already queued wait, new events are not queued for it.
   */
  status?: 'active' | 'disabled';
}

/** Changes a tenant's subscription in one statement; undefined when it is not theirs or unknown. */
export async function updateSubscription(
  db: Pick<pg.Pool, 'query'>,
  tenantId: string,
  id: string,
  changes: SubscriptionChanges,
): Promise<Subscription | undefined> {
  const { rows } = await db.query<Row>(
    `UPDATE subscriptions
        SET url = COALESCE($3, url),
            event_types = COALESCE($4, event_types),
            status = COALESCE($5, status),
            disabled_reason = CASE WHEN $5::text IS NULL THEN disabled_reason
                                   WHEN $5 = 'active' THEN NULL
                                   ELSE $6 END,
            updated_at = now()
      WHERE tenant_id = $1 AND subscription_id = $2
      RETURNING *`,
    [tenantId, id, changes.url ?? null, changes.eventTypes ?? null, changes.status ?? null, DisabledReason.Api],
  );
  return rows[0] ? toSubscription(rows[0]) : undefined;
}
