-- cpis schema, PostgreSQL backend, version 23: nothing changes. On SQLite this version keys the
-- access-history index on the child alone, `seq` being SQLite's rowid, which every index entry
-- holds and orders by; a PostgreSQL index entry points at a heap tuple, not at `seq`, so the
-- index keeps `(nhs_number, seq)` to read a child's accesses in order.
SELECT 1;
