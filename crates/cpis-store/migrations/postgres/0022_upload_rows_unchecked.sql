-- cpis schema, PostgreSQL backend, version 22: an upload's row results are no longer checked
-- against `uploads` row by row (issue #16, target 4). The foreign key ran a referential-integrity
-- query for every row written: 500,000 rows took 2.5 s to insert with it and 0.7-0.8 s without,
-- a tenth of a full reload. Row results are only ever written by the upload they belong to, in
-- its own transaction, after its `uploads` row; uploads are never deleted (the cascade it
-- declared never ran).
ALTER TABLE upload_rows DROP CONSTRAINT upload_rows_upload_seq_fkey;
