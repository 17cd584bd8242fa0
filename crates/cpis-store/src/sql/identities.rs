//! Identities: users, API tokens, sessions and application-restricted OAuth clients.

use super::{from_row, Db, Row};
use crate::{
    ClientKeys, IdentityChange, NewApiToken, OAuthClient, Session, StoreError, StoreResult, User,
};
use chrono::{DateTime, Utc};
use cpis_domain::{AuditEntry, NhsIdentity, WorkContact};

fn no_such_user() -> StoreError {
    StoreError::Constraint("no such user".into())
}

const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.kind, u.organisation, u.role, u.permissions,
    u.password_hash, u.disabled, u.failed_logins, u.locked_until, u.created_at";

fn user_from_row(r: &Row) -> StoreResult<User> {
    Ok(from_row!(r, 0 => User {
        id, username, display_name, kind, organisation, role, permissions, password_hash,
        disabled, failed_logins, locked_until, created_at
    }))
}

fn one_user(db: &mut dyn Db, sql_where: &str, arg: &str) -> StoreResult<Option<User>> {
    db.find(
        &format!("SELECT {USER_COLUMNS} FROM users u WHERE {sql_where}"),
        &[&arg],
        user_from_row,
    )
}

pub fn user_by_username(db: &mut dyn Db, username: &str) -> StoreResult<Option<User>> {
    one_user(db, "u.username = $1", username)
}

pub fn user_by_id(db: &mut dyn Db, id: &str) -> StoreResult<Option<User>> {
    one_user(db, "u.id = $1", id)
}

pub fn list_users(db: &mut dyn Db) -> StoreResult<Vec<User>> {
    db.list(
        &format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.username COLLATE \"C\""),
        &[],
        user_from_row,
    )
}

pub fn create_user(db: &mut dyn Db, u: &User) -> StoreResult<()> {
    db.exec(
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
            &u.failed_logins,
            &u.locked_until,
            &u.created_at,
        ],
    )?;
    Ok(())
}

pub fn update_user(db: &mut dyn Db, u: &User, now: DateTime<Utc>) -> StoreResult<()> {
    let n = db.exec(
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
            &u.failed_logins,
            &u.locked_until,
            &now,
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(no_such_user())
    }
}

/// One statement: every failure counts even when many arrive at once (SET sees the old row, and
/// the row lock serialises concurrent updates).
pub fn record_login_failure(
    db: &mut dyn Db,
    user_id: &str,
    max_failures: u32,
    lock_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let row = db.row(
        "UPDATE users SET
             failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
             locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END,
             updated_at = $4
         WHERE id = $1
         RETURNING locked_until",
        &[&user_id, &i64::from(max_failures), &lock_until, &now],
    )?;
    row.ok_or_else(no_such_user)?.get(0)
}

pub fn clear_login_failures(
    db: &mut dyn Db,
    user_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = db.exec(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = $2
         WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)",
        &[&user_id, &now],
    )?;
    Ok(n == 1)
}

pub fn create_api_token(db: &mut dyn Db, t: &NewApiToken) -> StoreResult<()> {
    db.exec(
        "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id,
            &t.user_id,
            &t.token_hash,
            &t.label,
            &t.created_at,
            &t.expires_at,
        ],
    )?;
    Ok(())
}

/// Applies an administrative change and appends its audit entry, inside the caller's
/// transaction: the change's rows first, then the audit append (which locks the chain head until
/// the transaction ends). An error rolls both back.
pub fn change_identity(
    db: &mut dyn Db,
    change: &IdentityChange,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    match change {
        IdentityChange::CreateUser(u) => create_user(db, u)?,
        IdentityChange::UpdateUser(u) => update_user(db, u, now)?,
        IdentityChange::CreateToken(t) => create_api_token(db, t)?,
        IdentityChange::RegisterClient { user, client } => {
            create_user(db, user)?;
            create_oauth_client(db, client)?;
        }
    }
    super::audit::append_alone(db, audit)
}

pub fn user_by_token_hash(
    db: &mut dyn Db,
    hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<User>> {
    db.find(
        &format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ),
        &[&hash, &now], user_from_row)
}

pub fn create_session(db: &mut dyn Db, s: &Session) -> StoreResult<()> {
    db.exec(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at,
                               sds_user_id, role_profile_id, role_code, assurance_level,
                               contact_phone, contact_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &s.id_hash,
            &s.user_id,
            &s.csrf_token,
            &s.created_at,
            &s.expires_at,
            &s.nhs.sds_user_id,
            &s.nhs.role_profile_id,
            &s.nhs.role_code,
            &s.assurance_level.map(i16::from),
            &s.contact.phone.as_ref().map(|p| p.as_str()),
            &s.contact.email.as_ref().map(|e| e.as_str()),
        ],
    )?;
    Ok(())
}

pub fn session(
    db: &mut dyn Db,
    id_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Session, User)>> {
    let Some(session) = db.find(
        "SELECT id_hash, user_id, csrf_token, created_at, expires_at, sds_user_id, role_profile_id,
                role_code, assurance_level, contact_phone, contact_email
         FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        &[&id_hash, &now],
        |r| {
            let nhs = from_row!(r, 5 => NhsIdentity { sds_user_id, role_profile_id, role_code });
            let assurance_level = r.get::<Option<i64>>(8)?.and_then(|a| u8::try_from(a).ok());
            let contact = from_row!(r, 9 => WorkContact { phone, email });
            Ok(from_row!(r, 0 => Session {
                id_hash, user_id, csrf_token, created_at, expires_at, nhs = nhs,
                assurance_level = assurance_level, contact = contact
            }))
        },
    )?
    else {
        return Ok(None);
    };
    Ok(user_by_id(db, &session.user_id)?.map(|user| (session, user)))
}

pub fn delete_session(db: &mut dyn Db, id_hash: &str) -> StoreResult<()> {
    db.exec("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
    Ok(())
}

pub fn create_oauth_client(db: &mut dyn Db, c: &OAuthClient) -> StoreResult<()> {
    let (json, url) = match &c.keys {
        ClientKeys::Jwks(j) => (Some(j.as_str()), None),
        ClientKeys::JwksUrl(u) => (None, Some(u.as_str())),
    };
    db.exec(
        "INSERT INTO oauth_clients (client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &c.client_id,
            &c.user_id,
            &json,
            &url,
            &c.allow_unattended_lookups,
            &c.created_at,
        ],
    )?;
    Ok(())
}

const CLIENT_COLUMNS: &str =
    "client_id, user_id, jwks_json, jwks_url, allow_unattended_lookups, created_at";

fn client_from_row(r: &Row) -> StoreResult<OAuthClient> {
    Ok(OAuthClient {
        client_id: r.get(0)?,
        user_id: r.get(1)?,
        keys: match (r.get(2)?, r.get(3)?) {
            (Some(j), None) => ClientKeys::Jwks(j),
            (None, Some(u)) => ClientKeys::JwksUrl(u),
            _ => return Err(StoreError::corrupt("oauth client keys")),
        },
        allow_unattended_lookups: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn oauth_client(db: &mut dyn Db, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
    let Some(row) = db.row(
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"),
        &[&client_id],
    )?
    else {
        return Ok(None);
    };
    let client = client_from_row(&row)?;
    Ok(user_by_id(db, &client.user_id)?.map(|u| (client, u)))
}

pub fn oauth_clients(db: &mut dyn Db) -> StoreResult<Vec<OAuthClient>> {
    db.list(
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id"),
        &[],
        client_from_row,
    )
}

/// Inside the caller's transaction.
pub fn use_assertion_jti(
    db: &mut dyn Db,
    client_id: &str,
    jti: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    db.exec(
        "DELETE FROM oauth_assertion_jtis WHERE expires_at <= $1",
        &[&now],
    )?;
    let n = db.exec(
        "INSERT INTO oauth_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (client_id, jti) DO NOTHING",
        &[&client_id, &jti, &expires_at],
    )?;
    Ok(n == 1)
}
