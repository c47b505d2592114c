import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { generateWebhookSecret, type SecretBox } from '../crypto/secret-box';

/**
 * Why a subscription is disabled, as stored in `disabled_reason`. A dead-letter
 * replay re-enables only `Gone` (the relay's doing); `Api` is the tenant's own
 * pause and stays until the tenant lifts it.
 */
export const DisabledReason = {
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
}

interface Row {
  subscription_id: string; url: string; event_types: string[]; status: 'active' | 'disabled';
  disabled_reason: string | null; created_at: Date;
}

const toSubscription = (row: Row): Subscription => ({
  id: row.subscription_id,
  url: row.url,
  eventTypes: row.event_types,
  status: row.status,
  disabledReason: row.disabled_reason,
  createdAt: row.created_at.toISOString(),
});

/** Creates a subscription; the signing secret is returned once and stored sealed. */
export async function createSubscription(
  db: Pick<pg.Pool, 'query'>,
  secretBox: SecretBox,
  input: { tenantId: string; url: string; eventTypes: string[] },
): Promise<Subscription & { secret: string }> {
  const secret = generateWebhookSecret();
  const { rows } = await db.query<Row>(
    `INSERT INTO subscriptions (subscription_id, tenant_id, url, secret_sealed, event_types)
     VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [randomUUID(), input.tenantId, input.url, secretBox.seal(secret), input.eventTypes],
  );
  return { ...toSubscription(rows[0]!), secret };
}

export async function listSubscriptions(db: Pick<pg.Pool, 'query'>, tenantId: string): Promise<Subscription[]> {
  const { rows } = await db.query<Row>('SELECT * FROM subscriptions WHERE tenant_id = $1 ORDER BY created_at', [tenantId]);
  return rows.map(toSubscription);
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
