-- NHS identities.
--
-- A CIS2 sign-in's session keeps the person's NHS identity and the assurance level of the
-- sign-in (the user row holds what every session shares).
ALTER TABLE sessions ADD COLUMN sds_user_id text;
ALTER TABLE sessions ADD COLUMN role_profile_id text;
ALTER TABLE sessions ADD COLUMN role_code text;
ALTER TABLE sessions ADD COLUMN assurance_level smallint;

-- Application-restricted clients (NHS API platform style signed-JWT client credentials): the
-- system identity they act as (a `users` row named `client:<client_id>`, which carries the
-- organisation, permissions and the disabled flag), and the public keys their assertions are
-- checked against: a JWKS document kept here, or a JWKS URL.
CREATE TABLE oauth_clients (
    client_id                text PRIMARY KEY,
    user_id                  text NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    jwks_json                text,
    jwks_url                 text,
    allow_unattended_lookups boolean NOT NULL DEFAULT false,
    created_at               timestamptz NOT NULL,
    CHECK ((jwks_json IS NULL) <> (jwks_url IS NULL))
);

-- The `jti` of every client assertion accepted, until the assertion expires: a `jti` seen again
-- is a replay. Shared by every server on the database.
CREATE TABLE oauth_assertion_jtis (
    client_id  text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX oauth_assertion_jtis_expiry ON oauth_assertion_jtis (expires_at);
