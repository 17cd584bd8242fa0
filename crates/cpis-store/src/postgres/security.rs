//! Users, API tokens and sessions.

use super::convert::{count, parse_ods, ts};
use super::pool::Conn;
use crate::{
    ClientKeys, IdentityChange, NewApiToken, OAuthClient, Session, StoreError, StoreResult, User,
    UserKind,
};
use chrono::{DateTime, Utc};
use cpis_domain::{AuditEntry, Permissions};
use postgres::Row;

const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.kind, u.organisation, u.role, u.permissions,
    u.password_hash, u.disabled, u.failed_logins, u.locked_until, u.created_at";

fn user_from_row(r: &Row) -> StoreResult<User> {
    Ok(User {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        display_name: r.try_get(2)?,
        kind: match r.try_get::<_, &str>(3)? {
            "user" => UserKind::User,
            "system" => UserKind::System,
            _ => return Err(StoreError::corrupt("user kind")),
        },
        organisation: parse_ods(r.try_get(4)?)?,
        role: r.try_get(5)?,
        permissions: Permissions::parse(r.try_get(6)?).map_err(StoreError::corrupt)?,
        password_hash: r.try_get(7)?,
        disabled: r.try_get(8)?,
        failed_logins: u32::try_from(count(r.try_get(9)?)).unwrap_or(u32::MAX),
        locked_until: r.try_get(10)?,
        created_at: r.try_get(11)?,
    })
}

fn one_user(conn: &mut Conn, sql_where: &str, arg: &str) -> StoreResult<Option<User>> {
    conn.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM users u WHERE {sql_where}"),
        &[&arg],
    )?
    .as_ref()
    .map(user_from_row)
    .transpose()
}

pub fn create_user(conn: &mut Conn, u: &User) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO users (id, username, display_name, kind, organisation, role, permissions, password_hash,
                            disabled, failed_logins, locked_until, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        &[
            &u.id,
            &u.username,
            &u.display_name,
            &u.kind.code(),
            &u.organisation.as_str(),
            &u.role,
            &u.permissions.to_string(),
            &u.password_hash,
            &u.disabled,
            &i64::from(u.failed_logins),
            &u.locked_until.map(ts),
            &ts(u.created_at),
        ],
    )?;
    Ok(())
}

/// One statement: every failure counts even when many arrive at once (SET sees the old row, and
/// the row lock serialises concurrent updates).
pub fn record_login_failure(
    conn: &mut Conn,
    user_id: &str,
    max_failures: u32,
    lock_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let row = conn.query_opt(
        "UPDATE users SET
             failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
             locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END,
             updated_at = $4
         WHERE id = $1
         RETURNING locked_until",
        &[
            &user_id,
            &i64::from(max_failures),
            &ts(lock_until),
            &ts(now),
        ],
    )?;
    match row {
        None => Err(StoreError::Constraint("no such user".into())),
        Some(r) => Ok(r.try_get(0)?),
    }
}

pub fn clear_login_failures(
    conn: &mut Conn,
    user_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = $2
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)",
        &[&user_id, &ts(now)],
    )?;
    Ok(n == 1)
}

pub fn update_user(conn: &mut Conn, u: &User, now: DateTime<Utc>) -> StoreResult<()> {
    let n = conn.execute(
        "UPDATE users SET display_name = $2, organisation = $3, role = $4, permissions = $5, password_hash = $6,
             disabled = $7, failed_logins = $8, locked_until = $9, updated_at = $10
         WHERE id = $1",
        &[
            &u.id,
            &u.display_name,
            &u.organisation.as_str(),
            &u.role,
            &u.permissions.to_string(),
            &u.password_hash,
            &u.disabled,
            &i64::from(u.failed_logins),
            &u.locked_until.map(ts),
            &ts(now),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Constraint("no such user".into()))
    }
}

pub fn user_by_username(conn: &mut Conn, username: &str) -> StoreResult<Option<User>> {
    one_user(conn, "u.username = $1", username)
}

pub fn user_by_id(conn: &mut Conn, id: &str) -> StoreResult<Option<User>> {
    one_user(conn, "u.id = $1", id)
}

pub fn list_users(conn: &mut Conn) -> StoreResult<Vec<User>> {
    conn.query(
        &format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.username COLLATE \"C\""),
        &[],
    )?
    .iter()
    .map(user_from_row)
    .collect()
}

pub fn create_api_token(conn: &mut Conn, t: &NewApiToken) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id,
            &t.user_id,
            &t.token_hash,
            &t.label,
            &ts(t.created_at),
            &t.expires_at.map(ts),
        ],
    )?;
    Ok(())
}

/// Applies an administrative change and appends its audit entry, inside the caller's
/// transaction (`PgStore::write`): the change's rows first, then the audit append, which locks the
/// chain head until the transaction ends. An error rolls both back.
pub fn change_identity(
    conn: &mut Conn,
    change: &IdentityChange,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    match change {
        IdentityChange::CreateUser(u) => create_user(conn, u)?,
        IdentityChange::UpdateUser(u) => update_user(conn, u, now)?,
        IdentityChange::CreateToken(t) => create_api_token(conn, t)?,
        IdentityChange::RegisterClient { user, client } => {
            create_user(conn, user)?;
            create_oauth_client(conn, client)?;
        }
    }
    super::audit::append_alone(conn, audit)
}

pub fn user_by_token_hash(
    conn: &mut Conn,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    conn.query_opt(
        &format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ),
        &[&hash, &ts(now)],
    )?
    .as_ref()
    .map(user_from_row)
    .transpose()
}

pub fn create_session(conn: &mut Conn, s: &Session) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at,
                               sds_user_id, role_profile_id, role_code, assurance_level)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &s.id_hash,
            &s.user_id,
            &s.csrf_token,
            &ts(s.created_at),
            &ts(s.expires_at),
            &s.nhs.sds_user_id,
            &s.nhs.role_profile_id,
            &s.nhs.role_code,
            &s.assurance_level.map(i16::from),
        ],
    )?;
    Ok(())
}

pub fn session(
    conn: &mut Conn,
    id_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Session, User)>> {
    let Some(r) = conn.query_opt(
        "SELECT user_id, csrf_token, created_at, expires_at, sds_user_id, role_profile_id, role_code,
                assurance_level
         FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        &[&id_hash, &ts(now)],
    )?
    else {
        return Ok(None);
    };
    let user_id: String = r.try_get(0)?;
    let Some(user) = user_by_id(conn, &user_id)? else {
        return Ok(None);
    };
    Ok(Some((
        Session {
            id_hash: id_hash.to_owned(),
            user_id,
            csrf_token: r.try_get(1)?,
            created_at: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            nhs: cpis_domain::NhsIdentity {
                sds_user_id: r.try_get(4)?,
                role_profile_id: r.try_get(5)?,
                role_code: r.try_get(6)?,
            },
            assurance_level: r
                .try_get::<_, Option<i16>>(7)?
                .and_then(|a| u8::try_from(a).ok()),
        },
        user,
    )))
}

pub fn delete_session(conn: &mut Conn, id_hash: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
    Ok(())
}

pub fn create_oauth_client(conn: &mut Conn, c: &OAuthClient) -> StoreResult<()> {
    let (json, url) = match &c.keys {
        ClientKeys::Jwks(j) => (Some(j.as_str()), None),
        ClientKeys::JwksUrl(u) => (None, Some(u.as_str())),
    };
    conn.execute(
        "INSERT INTO oauth_clients (client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &c.client_id,
            &c.user_id,
            &json,
            &url,
            &c.allow_unattended_lookups,
            &ts(c.created_at),
        ],
    )?;
    Ok(())
}

fn client_from_row(r: &Row) -> StoreResult<OAuthClient> {
    let json: Option<String> = r.try_get(2)?;
    let url: Option<String> = r.try_get(3)?;
    Ok(OAuthClient {
        client_id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        keys: match (json, url) {
            (Some(j), None) => ClientKeys::Jwks(j),
            (None, Some(u)) => ClientKeys::JwksUrl(u),
            _ => return Err(StoreError::corrupt("oauth client keys")),
        },
        allow_unattended_lookups: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

const CLIENT_COLUMNS: &str =
    "client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at";

pub fn oauth_client(conn: &mut Conn, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
    let Some(row) = conn.query_opt(
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"),
        &[&client_id],
    )?
    else {
        return Ok(None);
    };
    let client = client_from_row(&row)?;
    Ok(user_by_id(conn, &client.user_id)?.map(|u| (client, u)))
}

pub fn oauth_clients(conn: &mut Conn) -> StoreResult<Vec<OAuthClient>> {
    conn.query(
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id"),
        &[],
    )?
    .iter()
    .map(client_from_row)
    .collect()
}

pub fn use_assertion_jti(
    conn: &mut Conn,
    client_id: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    conn.execute(
        "DELETE FROM oauth_assertion_jtis WHERE expires_at <= $1",
        &[&ts(now)],
    )?;
    let n = conn.execute(
        "INSERT INTO oauth_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (client_id, jti) DO NOTHING",
        &[&client_id, &jti, &ts(expires_at)],
    )?;
    Ok(n == 1)
}
