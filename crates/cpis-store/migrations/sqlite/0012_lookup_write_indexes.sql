-- Fewer index writes per lookup (issue #16: bytes written per durable lookup). Every index on a
-- table a lookup appends to is another B-tree page the lookup's commit writes to the WAL and a
-- checkpoint copies into the file again.
--
-- notifications_by_la (la_ods, seq) orders an LA's notifications exactly as
-- notifications_la_cursor (la_ods, la_seq) does (la_seq is drawn in seq order under the
-- notification lock), and every query of an LA's notifications reads the cursor index.
DROP INDEX notifications_by_la;
-- The audit search has every filter optional (`$1 IS NULL OR subject_nhs = $1`, ...), a term
-- SQLite's planner cannot answer from an index: it walks audit_log by seq, newest first, and so
-- does verification. These four indexes were written on every audit append and read by no query
-- on SQLite (on PostgreSQL the planner uses them and they stay).
DROP INDEX audit_by_subject;
DROP INDEX audit_by_actor;
DROP INDEX audit_by_org;
DROP INDEX audit_by_time;
