-- The fingerprint algorithm a key was reserved with: a repeat is compared with
-- that version, so a later change of the algorithm never turns a true repeat
-- into a 422. Rows from before this migration were all computed with version 1.
ALTER TABLE operations ADD COLUMN fingerprint_version smallint NOT NULL DEFAULT 1;

-- `canceled` (contract v1.1): an operation ended by a cancel request.
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
  CHECK (status IN ('reserved', 'running', 'succeeded', 'failed', 'canceled'));

-- GET /v1/operations: a tenant's operations newest first, paged by
-- (created_at, operation_id); one index range per page, whatever the filters.
CREATE INDEX operations_tenant_created_idx ON operations (tenant_id, created_at DESC, operation_id DESC);
