-- Operation ids that no longer name an operation row: the row was purged, or
-- its key expired (or was released) and was reserved again under a new
-- operation_id (operations.reserve). Effects, Gemini attempts and background
-- interactions are keyed by operation_id, so without this list the records of
-- a superseded run were never found again and grew without bound. Filled by
-- a trigger, so every path that retires an id (the reserve's upsert, the
-- maintenance purge, the operator's purge) is covered; emptied by the
-- maintenance pass (src/effects/retention.ts) after a grace period that
-- outlasts any activity of the old run still finishing.
CREATE TABLE retired_operations (
  operation_id  uuid PRIMARY KEY,
  retired_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_operations_retired_at_idx ON retired_operations (retired_at);

CREATE FUNCTION retire_operation_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO retired_operations (operation_id) VALUES (OLD.operation_id) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER operations_retire_on_delete AFTER DELETE ON operations
  FOR EACH ROW EXECUTE FUNCTION retire_operation_id();
CREATE TRIGGER operations_retire_on_supersede AFTER UPDATE OF operation_id ON operations
  FOR EACH ROW WHEN (OLD.operation_id IS DISTINCT FROM NEW.operation_id) EXECUTE FUNCTION retire_operation_id();

-- Pruning settled spend reservations by age (src/spend/ledger.ts, pruneSpend)
-- walks this index; budget_spend is small (a row per tenant, period and cap).
CREATE INDEX budget_reservations_settled_at_idx ON budget_reservations (settled_at) WHERE settled_at IS NOT NULL;
