-- Fewer index writes per lookup (issue #16). notifications_by_la (la_ods, seq) orders an LA's
-- notifications exactly as notifications_la_cursor (la_ods, la_seq) does (la_seq is drawn in seq
-- order under the notification lock), and every query of an LA's notifications reads the cursor
-- index. (The audit indexes, dropped on SQLite, stay: PostgreSQL's planner uses them for the
-- audit search.)
DROP INDEX IF EXISTS notifications_by_la;
