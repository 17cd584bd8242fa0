-- cpis schema, PostgreSQL backend, version 20: room on each page of `plans` for a plan's next
-- version. An upload updates a plan's dates in place of the old row; with free space on the same
-- page and no indexed column changed (dates are not indexed, the UCPP index's column is not
-- changed by a CPP or LAC row), PostgreSQL writes the new version there without new index entries
-- (a HOT update). Pages written from now on keep 30% free; existing pages take it when the table
-- is rewritten (VACUUM FULL or pg_repack, docs/DEPLOYMENT.md).
ALTER TABLE plans SET (fillfactor = 70);
