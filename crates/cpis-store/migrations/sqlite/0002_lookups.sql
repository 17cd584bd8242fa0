-- cpis schema, SQLite backend, version 2: lookups (accesses) and the notification outbox.

-- Every lookup of a child: 'unscheduled' (notified, shown in the history), 'silent' (audit only) or
-- 'miss' (nothing visible; audit only).
CREATE TABLE accesses (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    time         TEXT NOT NULL,
    nhs_number   TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('unscheduled', 'silent', 'miss')),
    user_id      TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    role         TEXT NOT NULL,
    org_ods      TEXT NOT NULL,
    org_name     TEXT NOT NULL,
    setting_type TEXT,
    trace_id     TEXT
);
CREATE INDEX accesses_history ON accesses (nhs_number, seq) WHERE kind = 'unscheduled';

-- The transactional outbox: written in the same transaction as the event it reports.
CREATE TABLE notifications (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    la_ods          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('access', 'inactive-nhs-number', 'upload-report')),
    created_at      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT
);
CREATE INDEX notifications_by_la ON notifications (la_ods, seq);
