-- cpis schema, SQLite backend, version 23: the access-history index keys on the child alone
-- (issue #16, bytes written per durable lookup). `seq` is the table's rowid, which SQLite keeps in
-- every index entry and orders equal keys by: an index on `nhs_number` is read in `(nhs_number,
-- seq)` order, by a range of `seq`, as the two-column index was, and each entry is about a fifth
-- smaller (the sequence number was held twice). A copy-in of logged lookups writes one leaf of
-- this index per child looked up: fewer leaves, more children to a leaf, fewer pages per copy.
-- Rebuilding the index reads the access table once at the upgrade.
DROP INDEX accesses_history;
CREATE INDEX accesses_history ON accesses (nhs_number) WHERE kind = 'unscheduled';
