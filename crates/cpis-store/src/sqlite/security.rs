//! Users, API tokens and sessions.

use super::convert::{parse_ods, parse_ts, ts};
use crate::{
    ClientKeys, IdentityChange, NewApiToken, OAuthClient, Session, StoreError, StoreResult, User,
    UserKind,
};
use chrono::{DateTime, Utc};
use cpis_domain::{AuditEntry, Permissions};
use rusqlite::{params, Connection, OptionalExtension, Row};

const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.kind, u.organisation, u.role, u.permissions,
    u.password_hash, u.disabled, u.failed_logins, u.locked_until, u.created_at";

fn user_from_row(r: &Row<'_>) -> StoreResult<User> {
    let kind: String = r.get(3)?;
    let locked: Option<String> = r.get(10)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        kind: match kind.as_str() {
            "user" => UserKind::User,
            "system" => UserKind::System,
            _ => return Err(StoreError::corrupt("user kind")),
        },
        organisation: parse_ods(&r.get::<_, String>(4)?)?,
        role: r.get(5)?,
        permissions: Permissions::parse(&r.get::<_, String>(6)?).map_err(StoreError::corrupt)?,
        password_hash: r.get(7)?,
        disabled: r.get(8)?,
        failed_logins: r.get::<_, i64>(9)? as u32,
        locked_until: locked.as_deref().map(parse_ts).transpose()?,
        created_at: parse_ts(&r.get::<_, String>(11)?)?,
    })
}

fn one_user(conn: &Connection, sql_where: &str, arg: &str) -> StoreResult<Option<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE {sql_where}"
    ))?;
    let mut rows = stmt.query([arg])?;
    match rows.next()? {
        Some(r) => Ok(Some(user_from_row(r)?)),
        None => Ok(None),
    }
}

pub fn create_user(conn: &Connection, u: &User) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO users (id, username, display_name, kind, organisation, role, permissions, password_hash,
                            disabled, failed_logins, locked_until, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )?
    .execute(params![
        u.id,
        u.username,
        u.display_name,
        u.kind.code(),
        u.organisation.as_str(),
        u.role,
        u.permissions.to_string(),
        u.password_hash,
        u.disabled,
        i64::from(u.failed_logins),
        u.locked_until.map(ts),
        ts(u.created_at)
    ])?;
    Ok(())
}

/// One statement: every failure counts even when many arrive at once (SET sees the old row).
pub fn record_login_failure(
    conn: &Connection,
    user_id: &str,
    max_failures: u32,
    lock_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let locked: Option<Option<String>> = conn
        .prepare_cached(
            "UPDATE users SET
                 failed_logins = CASE WHEN failed_logins + 1 >= ?2 THEN 0 ELSE failed_logins + 1 END,
                 locked_until = CASE WHEN failed_logins + 1 >= ?2 THEN ?3 ELSE locked_until END,
                 updated_at = ?4
             WHERE id = ?1
             RETURNING locked_until",
        )?
        .query_row(
            params![user_id, i64::from(max_failures), ts(lock_until), ts(now)],
            |r| r.get(0),
        )
        .optional()?;
    match locked {
        None => Err(StoreError::Constraint("no such user".into())),
        Some(t) => t.as_deref().map(parse_ts).transpose(),
    }
}

pub fn clear_login_failures(
    conn: &Connection,
    user_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = ?2
             WHERE id = ?1 AND (locked_until IS NULL OR locked_until <= ?2)",
        )?
        .execute(params![user_id, ts(now)])?;
    Ok(n == 1)
}

pub fn update_user(conn: &Connection, u: &User, now: DateTime<Utc>) -> StoreResult<()> {
    let n = conn
        .prepare_cached(
            "UPDATE users SET display_name = ?2, organisation = ?3, role = ?4, permissions = ?5, password_hash = ?6,
                 disabled = ?7, failed_logins = ?8, locked_until = ?9, updated_at = ?10
             WHERE id = ?1",
        )?
        .execute(params![
            u.id,
            u.display_name,
            u.organisation.as_str(),
            u.role,
            u.permissions.to_string(),
            u.password_hash,
            u.disabled,
            i64::from(u.failed_logins),
            u.locked_until.map(ts),
            ts(now)
        ])?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Constraint("no such user".into()))
    }
}

pub fn user_by_username(conn: &Connection, username: &str) -> StoreResult<Option<User>> {
    one_user(conn, "u.username = ?1", username)
}

pub fn user_by_id(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    one_user(conn, "u.id = ?1", id)
}

pub fn list_users(conn: &Connection) -> StoreResult<Vec<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.username"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(user_from_row(r)?);
    }
    Ok(out)
}

pub fn create_api_token(conn: &Connection, t: &NewApiToken) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![t.id, t.user_id, t.token_hash, t.label, ts(t.created_at), t.expires_at.map(ts)])?;
    Ok(())
}

/// Applies an administrative change and appends its audit entry in one transaction; an error
/// rolls both back.
pub fn change_identity(
    conn: &mut Connection,
    change: &IdentityChange,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let apply = |tx: &Connection| match change {
        IdentityChange::CreateUser(u) => create_user(tx, u),
        IdentityChange::UpdateUser(u) => update_user(tx, u, now),
        IdentityChange::CreateToken(t) => create_api_token(tx, t),
        IdentityChange::RegisterClient { user, client } => {
            create_user(tx, user)?;
            create_oauth_client(tx, client)
        }
    };
    super::audit::audited(conn, audit, apply, |_| true)
}

pub fn user_by_token_hash(
    conn: &Connection,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)"
    ))?;
    let mut rows = stmt.query(params![hash, ts(now)])?;
    match rows.next()? {
        Some(r) => Ok(Some(user_from_row(r)?)),
        None => Ok(None),
    }
}

pub fn create_session(conn: &Connection, s: &Session) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at,
                               sds_user_id, role_profile_id, role_code, assurance_level)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        s.id_hash,
        s.user_id,
        s.csrf_token,
        ts(s.created_at),
        ts(s.expires_at),
        s.nhs.sds_user_id,
        s.nhs.role_profile_id,
        s.nhs.role_code,
        s.assurance_level.map(i64::from)
    ])?;
    Ok(())
}

pub fn session(
    conn: &Connection,
    id_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Session, User)>> {
    type Row = (
        String,
        String,
        String,
        String,
        cpis_domain::NhsIdentity,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT user_id, csrf_token, created_at, expires_at, sds_user_id, role_profile_id, role_code,
                    assurance_level
             FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
        )?
        .query_row(params![id_hash, ts(now)], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                cpis_domain::NhsIdentity {
                    sds_user_id: r.get(4)?,
                    role_profile_id: r.get(5)?,
                    role_code: r.get(6)?,
                },
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((user_id, csrf, created, expires, nhs, assurance)) = row else {
        return Ok(None);
    };
    let Some(user) = user_by_id(conn, &user_id)? else {
        return Ok(None);
    };
    Ok(Some((
        Session {
            id_hash: id_hash.to_owned(),
            user_id,
            csrf_token: csrf,
            created_at: parse_ts(&created)?,
            expires_at: parse_ts(&expires)?,
            nhs,
            assurance_level: assurance.and_then(|a| u8::try_from(a).ok()),
        },
        user,
    )))
}

pub fn delete_session(conn: &Connection, id_hash: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
        .execute([id_hash])?;
    Ok(())
}

pub fn create_oauth_client(conn: &Connection, c: &OAuthClient) -> StoreResult<()> {
    let (json, url) = match &c.keys {
        ClientKeys::Jwks(j) => (Some(j.as_str()), None),
        ClientKeys::JwksUrl(u) => (None, Some(u.as_str())),
    };
    conn.prepare_cached(
        "INSERT INTO oauth_clients (client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.client_id,
        c.user_id,
        json,
        url,
        c.allow_unattended_lookups,
        ts(c.created_at)
    ])?;
    Ok(())
}

fn client_from_row(r: &Row<'_>) -> StoreResult<OAuthClient> {
    let json: Option<String> = r.get(2)?;
    let url: Option<String> = r.get(3)?;
    Ok(OAuthClient {
        client_id: r.get(0)?,
        user_id: r.get(1)?,
        keys: match (json, url) {
            (Some(j), None) => ClientKeys::Jwks(j),
            (None, Some(u)) => ClientKeys::JwksUrl(u),
            _ => return Err(StoreError::corrupt("oauth client keys")),
        },
        allow_unattended_lookups: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?)?,
    })
}

const CLIENT_COLUMNS: &str =
    "client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at";

pub fn oauth_client(
    conn: &Connection,
    client_id: &str,
) -> StoreResult<Option<(OAuthClient, User)>> {
    let client = conn
        .prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = ?1"
        ))?
        .query([client_id])?
        .next()?
        .map(client_from_row)
        .transpose()?;
    let Some(client) = client else {
        return Ok(None);
    };
    Ok(user_by_id(conn, &client.user_id)?.map(|u| (client, u)))
}

pub fn oauth_clients(conn: &Connection) -> StoreResult<Vec<OAuthClient>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(client_from_row(r)?);
    }
    Ok(out)
}

pub fn use_assertion_jti(
    conn: &Connection,
    client_id: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    conn.prepare_cached("DELETE FROM oauth_assertion_jtis WHERE expires_at <= ?1")?
        .execute([ts(now)])?;
    let n = conn
        .prepare_cached(
            "INSERT INTO oauth_assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (client_id, jti) DO NOTHING",
        )?
        .execute(params![client_id, jti, ts(expires_at)])?;
    Ok(n == 1)
}
