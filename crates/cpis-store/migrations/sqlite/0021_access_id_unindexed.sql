-- cpis schema, SQLite backend, version 21: an access's id is no longer indexed (issue #16, bytes
-- written per durable lookup). No query reads an access by its id (history, attendance and the
-- audit trail read by child and sequence number), and the id is a time-ordered UUID drawn by the
-- lookup service, unique by construction; the unique index was one more B-tree whose last page
-- every lookup commit wrote to the WAL and every checkpoint copied again. SQLite cannot drop a
-- UNIQUE column constraint, so the table is rebuilt without it (the same columns and rows).
CREATE TABLE accesses_new (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL,
    time            TEXT NOT NULL,
    nhs_number      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('unscheduled', 'silent', 'miss')),
    user_id         TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    role            TEXT NOT NULL,
    org_ods         TEXT NOT NULL,
    org_name        TEXT NOT NULL,
    setting_type    TEXT,
    trace_id        TEXT,
    sds_user_id     TEXT,
    role_profile_id TEXT,
    role_code       TEXT
);
INSERT INTO accesses_new (seq, id, time, nhs_number, kind, user_id, user_name, role, org_ods,
                          org_name, setting_type, trace_id, sds_user_id, role_profile_id, role_code)
    SELECT seq, id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
           setting_type, trace_id, sds_user_id, role_profile_id, role_code
    FROM accesses;
DROP TABLE accesses;
ALTER TABLE accesses_new RENAME TO accesses;
CREATE INDEX accesses_history ON accesses (nhs_number, seq) WHERE kind = 'unscheduled';
