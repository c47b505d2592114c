-- A delivery row is updated twice: the claim (lease columns only, none of them
-- indexed) and the outcome. With room on its page the claim is a HOT update:
-- no new entry in any of the table's three indexes. Filled to the brim by the
-- statement that writes the deliveries of an event, a page had no room, so
-- every claim inserted three index entries. A claim updates neighbouring rows
-- (same seq range) in one transaction, whose old versions stay until it
-- commits: half a page (~20 rows of ~200 bytes) leaves room for all of them.
-- Applies to pages written from now on; a queue table pruned every hour
-- turns over on its own.
ALTER TABLE deliveries SET (fillfactor = 50);
