-- NHS identities.
--
-- A CIS2 sign-in's session keeps the person's NHS identity and the assurance level of the
-- sign-in (the user row holds what every session shares).
ALTER TABLE sessions ADD COLUMN sds_user_id TEXT;
ALTER TABLE sessions ADD COLUMN role_profile_id TEXT;
ALTER TABLE sessions ADD COLUMN role_code TEXT;
ALTER TABLE sessions ADD COLUMN assurance_level INTEGER;

-- Application-restricted clients (NHS API platform style signed-JWT client credentials): the
-- system identity they act as (a `users` row named `client:<client_id>`, which carries the
-- organisation, permissions and the disabled flag), and the public keys their assertions are
-- checked against: a JWKS document kept here, or a JWKS URL.
CREATE TABLE oauth_clients (
    client_id                TEXT PRIMARY KEY,
    user_id                  TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    jwks_json                TEXT,
    jwks_url                 TEXT,
    allow_unattended_lookups INTEGER NOT NULL DEFAULT 0 CHECK (allow_unattended_lookups IN (0, 1)),
    created_at               TEXT NOT NULL,
    CHECK ((jwks_json IS NULL) <> (jwks_url IS NULL))
) WITHOUT ROWID;

-- The `jti` of every client assertion accepted, until the assertion expires: a `jti` seen again
-- is a replay. Shared by every server on the database.
CREATE TABLE oauth_assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (client_id, jti)
) WITHOUT ROWID;
CREATE INDEX oauth_assertion_jtis_expiry ON oauth_assertion_jtis (expires_at);
