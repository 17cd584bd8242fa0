-- cpis schema, SQLite backend, version 13: the safeguarding workflow's notification kinds
-- (escalation, was-not-brought, birth, birth-reminder, adoption-invalidation; docs/WORKFLOW.md).
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt with the wider list.
CREATE TABLE notifications_new (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    la_ods          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('access', 'inactive-nhs-number', 'upload-report',
                        'escalation', 'was-not-brought', 'birth', 'birth-reminder',
                        'adoption-invalidation')),
    created_at      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    la_seq          INTEGER
);
INSERT INTO notifications_new (seq, id, la_ods, kind, created_at, payload, acknowledged_at,
                               acknowledged_by, la_seq)
    SELECT seq, id, la_ods, kind, created_at, payload, acknowledged_at, acknowledged_by, la_seq
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE UNIQUE INDEX notifications_la_cursor ON notifications (la_ods, la_seq);
