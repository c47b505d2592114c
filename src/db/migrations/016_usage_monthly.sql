-- Bills are financial records: usage_ledger's detail rows (one per
-- operation) are not deleted but rolled up, once their UTC month is older than
-- the current one and the ONCEFLOW_BILL_DETAIL_MONTHS before it, into one row per tenant, month,
-- operation type and model here; the roll-up deletes the detail rows and adds
-- them here in one statement (src/operations/bill.ts, rollUpBills). Readers
-- of bills add both tables (usageByMonth).
CREATE TABLE usage_monthly (
  tenant_id        text NOT NULL,
  -- first day of the UTC calendar month
  month            date NOT NULL,
  operation_type   text NOT NULL,
  -- '' for bills without a model
  model            text NOT NULL,
  operations       bigint NOT NULL,
  prompt_tokens    bigint NOT NULL,
  output_tokens    bigint NOT NULL,
  total_tokens     bigint NOT NULL,
  cost_micros      bigint NOT NULL,
  rolled_up_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, month, operation_type, model)
);
-- The roll-up walks detail rows oldest first.
CREATE INDEX usage_ledger_created_idx ON usage_ledger (created_at);
