-- cpis schema, SQLite backend, version 19: how far the lookup spool has been drained. While a long
-- write transaction (an upload) holds SQLite's one writer, lookup groups are made durable in a
-- spool file beside the database and copied in afterwards (src/sqlite/lookup_spool.rs); this row,
-- written in the transaction that copies them, says which spool entries are already here, so a
-- crash between that commit and the spool's clean-up never copies one twice.
CREATE TABLE lookup_spool_drained (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
);
INSERT INTO lookup_spool_drained (id, through) VALUES (1, 0);
