-- cpis schema, PostgreSQL backend, version 19: the SQLite backend's lookup-spool marker
-- (migrations/sqlite/0019_lookup_spool.sql). PostgreSQL writers do not wait behind an upload's
-- transaction, so nothing is spooled here; the table keeps both schemas at the same version.
CREATE TABLE lookup_spool_drained (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through BIGINT NOT NULL
);
INSERT INTO lookup_spool_drained (id, through) VALUES (1, 0);
