-- cpis schema, PostgreSQL backend, version 3: identities, API tokens, sessions, the audit trail.

CREATE TABLE users (
    id              text PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    display_name    text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('user', 'system')),
    organisation    text NOT NULL,
    role            text NOT NULL,
    permissions     text NOT NULL,
    password_hash   text,
    disabled        boolean NOT NULL DEFAULT false,
    failed_logins   bigint NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- API tokens are stored only as SHA-256 digests.
CREATE TABLE api_tokens (
    id         text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL UNIQUE,
    label      text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- Sessions are stored only as SHA-256 digests of the cookie value.
CREATE TABLE sessions (
    id_hash    text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Append-only, hash-chained: hash = SHA-256(prev_hash || canonical entry). audit_head holds the
-- newest entry's seq and hash, so removing entries from the end is detected too; appenders lock
-- its one row (SELECT ... FOR UPDATE), which keeps the chain linear across servers.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,
    time         timestamptz NOT NULL,
    actor_id     text NOT NULL,
    actor_name   text NOT NULL,
    actor_org    text,
    actor_role   text NOT NULL,
    action       text NOT NULL,
    subject_nhs  text,
    trace_id     text,
    outcome      text NOT NULL,
    detail       text,
    prev_hash    text NOT NULL,
    hash         text NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log (subject_nhs, seq) WHERE subject_nhs IS NOT NULL;
CREATE INDEX audit_by_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_by_org ON audit_log (actor_org, seq);
CREATE INDEX audit_by_time ON audit_log (time);

CREATE TABLE audit_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL,
    hash text NOT NULL
);
-- The genesis head: seq 0 and the all-zero hash (what an empty chain verifies to).
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
