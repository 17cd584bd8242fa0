-- cpis schema, SQLite backend, version 6: the MESH outbox.
-- How far each LA's notifications have been queued for its MESH mailbox (a notification `la_seq`).
CREATE TABLE mesh_cursors (
    la_ods        TEXT PRIMARY KEY,
    queued_seq    INTEGER NOT NULL
);

-- One row per MESH message cpis sends; `local_id` (sent as mex-LocalID) makes each send
-- idempotent: a row is queued once, and a send whose outcome is unknown (`send_started_at`
-- set, no `message_id`) is looked up by its local id before it is sent again.
CREATE TABLE mesh_outbox (
    id              INTEGER PRIMARY KEY,
    local_id        TEXT NOT NULL UNIQUE,
    recipient       TEXT NOT NULL,
    workflow_id     TEXT NOT NULL,
    subject         TEXT,
    filename        TEXT,
    content_type    TEXT NOT NULL,
    body            BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    send_started_at TEXT,
    message_id      TEXT,
    sent_at         TEXT,
    last_error      TEXT,
    dead_at         TEXT
);
CREATE INDEX mesh_outbox_due ON mesh_outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;
