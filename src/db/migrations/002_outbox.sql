-- The transactional outbox, subscriber fan-out and the consumer inbox.

CREATE TABLE outbox_events (
  -- the Standard Webhooks `webhook-id`: derived from our own ids, stable across redeliveries
  event_id      text PRIMARY KEY,
  -- insertion order; only compared within one aggregate (see relay ordering)
  seq           bigserial NOT NULL UNIQUE,
  tenant_id     text NOT NULL,
  aggregate_id  text NOT NULL,
  event_type    text NOT NULL,
  payload       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_events_aggregate_idx ON outbox_events (aggregate_id, seq);
CREATE INDEX outbox_events_created_idx ON outbox_events (created_at);

CREATE TABLE subscriptions (
  subscription_id   uuid PRIMARY KEY,
  tenant_id         text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  url               text NOT NULL,
  -- AES-256-GCM sealed `whsec_` secret; the relay must sign, so it cannot be a hash
  secret_sealed     text NOT NULL,
  event_types       text[] NOT NULL,
  status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  disabled_reason   text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id) WHERE status = 'active';

-- One row per (event, subscriber), written in the enqueueing transaction.
CREATE TABLE deliveries (
  event_id          text NOT NULL REFERENCES outbox_events (event_id) ON DELETE CASCADE,
  subscription_id   uuid NOT NULL REFERENCES subscriptions (subscription_id) ON DELETE CASCADE,
  aggregate_id      text NOT NULL,
  seq               bigint NOT NULL,
  status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts          integer NOT NULL DEFAULT 0,
  next_attempt_at   timestamptz NOT NULL DEFAULT now(),
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  delivered_at      timestamptz,
  PRIMARY KEY (event_id, subscription_id)
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, seq) WHERE status = 'pending';
CREATE INDEX deliveries_order_idx ON deliveries (subscription_id, aggregate_id, seq) WHERE status <> 'delivered';

-- Consumers record each handled event id here in the same transaction as the
-- handler's effect, so a redelivery is a no-op.
CREATE TABLE inbox (
  consumer      text NOT NULL,
  event_id      text NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_received_idx ON inbox (received_at);
