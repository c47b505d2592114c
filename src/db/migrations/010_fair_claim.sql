-- Fair claiming (src/outbox/claim.ts): the claim walks each active
-- subscription's due deliveries in order, a bounded number per subscription,
-- instead of one global walk in due order, where a burst of one tenant's
-- events pushed every other tenant's first delivery behind it. Replaces the
-- global due index, so a delivery still costs the same number of index entries.
CREATE INDEX deliveries_subscription_due_idx ON deliveries (subscription_id, next_attempt_at, seq) WHERE status = 'pending';
DROP INDEX deliveries_due_idx;

-- A subscription paused by a 410 Gone keeps receiving deliveries (enqueue.ts),
-- and subscription lists page by (created_at, subscription_id): index all of a
-- tenant's subscriptions, not only the active ones.
CREATE INDEX subscriptions_tenant_created_idx ON subscriptions (tenant_id, created_at, subscription_id);
DROP INDEX subscriptions_tenant_idx;
