-- Tenants, their hashed API keys, the idempotency store and the side-effect guard.

CREATE TABLE tenants (
  tenant_id   text PRIMARY KEY CHECK (tenant_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as SHA-256 digests: a leaked table cannot authenticate.
-- High-entropy keys make a slow KDF unnecessary; lookup stays one index probe.
CREATE TABLE api_keys (
  key_hash    bytea PRIMARY KEY,
  tenant_id   text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  label       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- One row per (tenant, type, key) reservation. operation_id changes when an
-- expired or released key is reserved again, so effects of an old run never
-- leak into a new one while the Temporal workflow id stays derived from the key.
CREATE TABLE operations (
  tenant_id        text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  operation_type   text NOT NULL,
  idempotency_key  text NOT NULL,
  operation_id     uuid NOT NULL UNIQUE,
  fingerprint      text NOT NULL,
  workflow_id      text NOT NULL,
  run_id           text,
  -- reserved: key taken, workflow start not yet confirmed (the self-healing window)
  status           text NOT NULL CHECK (status IN ('reserved', 'running', 'succeeded', 'failed')),
  input            jsonb NOT NULL,
  result           jsonb,
  error            jsonb,
  -- HTTP status a repeat of a failed operation answers with
  error_status     integer,
  -- a failed operation whose type releases the key: the next request starts anew
  released         boolean NOT NULL DEFAULT false,
  first_seen_ms    bigint NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  expires_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, operation_type, idempotency_key)
);
CREATE INDEX operations_expires_idx ON operations (expires_at);
-- the reconciler scans only the rows whose start was never confirmed
CREATE INDEX operations_unstarted_idx ON operations (updated_at) WHERE status = 'reserved';
CREATE INDEX operations_running_idx ON operations (created_at) WHERE status IN ('reserved', 'running');

-- The side-effect guard: one row per completed (operation, step). An activity
-- looks here first and returns the stored result instead of acting again.
CREATE TABLE effects (
  operation_id  uuid NOT NULL,
  step          text NOT NULL,
  workflow_id   text NOT NULL,
  result        jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operation_id, step)
);

-- The usage ledger: exactly one bill per operation, enforced by the primary key.
CREATE TABLE usage_ledger (
  operation_id     uuid PRIMARY KEY,
  tenant_id        text NOT NULL,
  operation_type   text NOT NULL,
  model            text,
  prompt_tokens    integer NOT NULL DEFAULT 0,
  output_tokens    integer NOT NULL DEFAULT 0,
  total_tokens     integer NOT NULL DEFAULT 0,
  cost_micros      bigint NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_ledger_tenant_idx ON usage_ledger (tenant_id, created_at);
