-- A relay leases the deliveries it claims: another relay skips them until the
-- lease runs out, which is also how a delivery held by a crashed relay comes back.
ALTER TABLE deliveries ADD COLUMN locked_until timestamptz;
ALTER TABLE deliveries ADD COLUMN locked_by text;
