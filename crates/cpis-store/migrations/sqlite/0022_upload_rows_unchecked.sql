-- cpis schema, SQLite backend, version 22: nothing changes. On PostgreSQL this version drops the
-- foreign key from `upload_rows` to `uploads`, whose per-row check cost a tenth of a full reload
-- there; SQLite's check is one probe of an in-memory page per row, and dropping it would mean
-- rebuilding `upload_rows` (every row result ever kept) at the upgrade.
SELECT 1;
