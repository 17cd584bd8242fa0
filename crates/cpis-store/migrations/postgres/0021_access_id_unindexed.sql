-- cpis schema, PostgreSQL backend, version 21: an access's id is no longer indexed (issue #16).
-- No query reads an access by its id (history, attendance and the audit trail read by child and
-- sequence number), and the id is a time-ordered UUID drawn by the lookup service, unique by
-- construction; the unique index was one more B-tree entry (and WAL record) per lookup.
ALTER TABLE accesses DROP CONSTRAINT accesses_id_key;
