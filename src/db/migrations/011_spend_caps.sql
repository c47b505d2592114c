-- Per-tenant spend caps. A tenant has at most one budget per period (a UTC
-- calendar day or month); every paid Gemini call reserves its worst-case cost
-- against each of them before it is made, and its actual cost replaces the
-- reservation when its answer is stored. All amounts in micro-USD.
CREATE TABLE tenant_budgets (
  tenant_id         text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  period            text NOT NULL CHECK (period IN ('day', 'month')),
  limit_micro_usd   bigint NOT NULL CHECK (limit_micro_usd >= 0),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, period)
);

-- What one tenant has spent (reserved, then settled) in one period. The row
-- is the lock that serialises a tenant's concurrent reservations: a
-- reservation updates it and checks the limit in the same transaction.
CREATE TABLE budget_spend (
  tenant_id         text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
  period            text NOT NULL CHECK (period IN ('day', 'month')),
  period_start      timestamptz NOT NULL,
  spent_micro_usd   bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, period, period_start)
);

-- One row per paid step (operation, step) that reserved: its estimate until
-- the answer is stored, then its actual cost. reserved_at names the periods it
-- counts in, so a call settled after midnight corrects the day it was reserved in.
CREATE TABLE budget_reservations (
  operation_id      uuid NOT NULL,
  step              text NOT NULL,
  tenant_id         text NOT NULL,
  estimate_micro_usd bigint NOT NULL,
  actual_micro_usd  bigint,
  reserved_at       timestamptz NOT NULL DEFAULT now(),
  settled_at        timestamptz,
  PRIMARY KEY (operation_id, step)
);
CREATE INDEX budget_reservations_reserved_at ON budget_reservations (reserved_at);
