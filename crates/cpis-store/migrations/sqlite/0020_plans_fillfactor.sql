-- cpis schema, SQLite backend, version 20: nothing to change. On PostgreSQL this version leaves
-- room on each page of `plans` for updated rows (fillfactor); SQLite has no such setting.
SELECT 1;
