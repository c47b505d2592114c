-- Scheduled operations: the tenant's view of its Temporal Schedules. Temporal
-- holds the spec and runs the slots; this row binds the creating request's
-- Idempotency-Key to one schedule and lets a tenant list its own schedules
-- without a visibility query.

CREATE TABLE schedules (
  schedule_id      text PRIMARY KEY,
  tenant_id        text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  -- the POST's own Idempotency-Key: a repeat of the create returns this row
  idempotency_key  text NOT NULL,
  fingerprint      text NOT NULL,
  operation_type   text NOT NULL,
  input            jsonb NOT NULL,
  -- the spec as the tenant sent it (cron or interval, time zone, catch-up window, overlap)
  spec             jsonb NOT NULL,
  paused           boolean NOT NULL DEFAULT false,
  -- milliseconds, as JavaScript reads it: the list cursor carries it back exactly
  created_at       timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  deleted_at       timestamptz,
  UNIQUE (tenant_id, idempotency_key)
);
-- the tenant's list, newest first, paged by (created_at, schedule_id)
CREATE INDEX schedules_tenant_created_idx ON schedules (tenant_id, created_at DESC, schedule_id DESC) WHERE deleted_at IS NULL;
