-- Deliveries of a subscription paused by its subscriber's 410 Gone wait for a
-- resume (enqueue.ts), but not forever: the outbox prune deletes those older
-- than OUTBOX_PAUSED_RETENTION_DAYS. So that nothing goes without a record,
-- the same statement counts them here, with the creation time of the oldest
-- and newest event dropped (GET /v1/subscriptions/{id}: droppedEvents).
ALTER TABLE subscriptions
  ADD COLUMN dropped_events         bigint NOT NULL DEFAULT 0,
  ADD COLUMN dropped_first_event_at timestamptz,
  ADD COLUMN dropped_last_event_at  timestamptz;
