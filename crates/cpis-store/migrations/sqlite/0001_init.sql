-- cpis schema, SQLite backend, version 1.
-- Dates are ISO 'YYYY-MM-DD' text, timestamps RFC 3339 UTC text, NHS numbers ten-digit text.

CREATE TABLE local_authorities (
    ods_code           TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    office_hours_phone TEXT NOT NULL,
    edt_phone          TEXT NOT NULL,
    secure_email       TEXT,
    mesh_mailbox       TEXT UNIQUE,
    updated_at         TEXT NOT NULL
);

CREATE TABLE care_settings (
    ods_code     TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    setting_type TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE demographics (
    nhs_number    TEXT PRIMARY KEY,
    status        TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'inactive')),
    superseded_by TEXT,
    date_of_birth TEXT NOT NULL,
    sensitive     INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    updated_at    TEXT NOT NULL,
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL))
) WITHOUT ROWID;

-- One CP-IS record per (NHS number, submitting LA).
CREATE TABLE records (
    id             INTEGER PRIMARY KEY,
    nhs_number     TEXT NOT NULL,
    la_ods         TEXT NOT NULL REFERENCES local_authorities (ods_code),
    local_id       TEXT,
    given_name     TEXT,
    family_name    TEXT,
    date_of_birth  TEXT,
    sensitive      INTEGER NOT NULL DEFAULT 0 CHECK (sensitive IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    last_upload_id TEXT,
    UNIQUE (nhs_number, la_ods)
);
CREATE INDEX records_by_la ON records (la_ods);

-- Up to one plan of each type per record.
CREATE TABLE plans (
    record_id              INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    plan_type              TEXT NOT NULL CHECK (plan_type IN ('CPP', 'LAC', 'UCPP')),
    start_date             TEXT NOT NULL,
    end_date               TEXT,
    expected_delivery_date TEXT,
    updated_at             TEXT NOT NULL,
    PRIMARY KEY (record_id, plan_type)
) WITHOUT ROWID;

CREATE TABLE uploads (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    la_ods         TEXT NOT NULL,
    file_id        TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('delta', 'full')),
    file_date      TEXT NOT NULL,
    format         TEXT NOT NULL,
    channel        TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    status         TEXT NOT NULL,
    -- 1 while this upload is the one that counts for idempotency (applied, partly applied or held).
    effective      INTEGER NOT NULL DEFAULT 0 CHECK (effective IN (0, 1)),
    file_outcome   TEXT,
    message        TEXT,
    rows_total     INTEGER NOT NULL DEFAULT 0,
    rows_accepted  INTEGER NOT NULL DEFAULT 0,
    rows_rejected  INTEGER NOT NULL DEFAULT 0,
    cpr01          INTEGER NOT NULL DEFAULT 0,
    cpr02          INTEGER NOT NULL DEFAULT 0,
    cpr03          INTEGER NOT NULL DEFAULT 0,
    cpr04          INTEGER NOT NULL DEFAULT 0,
    cpr05          INTEGER NOT NULL DEFAULT 0,
    cpr06          INTEGER NOT NULL DEFAULT 0,
    cpr07          INTEGER NOT NULL DEFAULT 0,
    plans_ended    INTEGER NOT NULL DEFAULT 0,
    deleted        INTEGER NOT NULL DEFAULT 0,
    received_at    TEXT NOT NULL,
    completed_at   TEXT,
    duplicate_of   TEXT
);
CREATE UNIQUE INDEX uploads_effective_file_id ON uploads (la_ods, file_id) WHERE effective = 1;
CREATE INDEX uploads_effective_hash ON uploads (la_ods, content_sha256) WHERE effective = 1;
CREATE INDEX uploads_by_la ON uploads (la_ods, seq);

CREATE TABLE upload_rows (
    upload_seq     INTEGER NOT NULL REFERENCES uploads (seq) ON DELETE CASCADE,
    row_no         INTEGER NOT NULL,
    nhs_number     TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    detail         TEXT,
    message        TEXT,
    new_nhs_number TEXT,
    PRIMARY KEY (upload_seq, row_no)
) WITHOUT ROWID;

-- The file of an upload held for confirmation, so that confirming replays exactly what was sent.
CREATE TABLE held_files (
    upload_seq INTEGER PRIMARY KEY REFERENCES uploads (seq) ON DELETE CASCADE,
    content    BLOB NOT NULL
);
