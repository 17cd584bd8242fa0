-- cpis schema, SQLite backend, version 5: LA webhooks and their delivery queue.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    la_ods      TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    disabled_at TEXT
);
CREATE INDEX webhooks_by_la ON webhooks (la_ods);

-- One row per (notification, webhook), written in the notification's own transaction.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    TEXT,
    dead_at         TEXT,
    UNIQUE (notification_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
