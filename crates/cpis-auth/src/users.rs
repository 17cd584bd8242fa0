//! Administering identities: add users and systems, disable them, issue API tokens.

use crate::{password, secret};
use chrono::{DateTime, Duration, Utc};
use cpis_domain::{OdsCode, Permissions};
use cpis_store::{NewApiToken, Store, StoreError, User, UserKind};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 3-64 characters of letters, digits, '.', '_', '-' or '@'")]
    BadUsername,
    #[error("a user named '{0}' already exists")]
    Exists(String),
    #[error("no user named '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user or system to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub kind: UserKind,
    pub organisation: OdsCode,
    pub role: String,
    pub permissions: Permissions,
    pub password: Option<String>,
}

fn valid_username(u: &str) -> bool {
    (3..=64).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

pub fn add(store: &dyn Store, new: NewUser, now: DateTime<Utc>) -> Result<User, UserError> {
    if !valid_username(&new.username) {
        return Err(UserError::BadUsername);
    }
    if store.user_by_username(&new.username)?.is_some() {
        return Err(UserError::Exists(new.username));
    }
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: new.username,
        display_name: new.display_name,
        kind: new.kind,
        organisation: new.organisation,
        role: new.role,
        permissions: new.permissions,
        password_hash: new.password.as_deref().map(password::hash).transpose()?,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
    };
    store.create_user(&user)?;
    Ok(user)
}

pub fn set_disabled(
    store: &dyn Store,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    let mut user = store
        .user_by_username(username)?
        .ok_or_else(|| UserError::NotFound(username.into()))?;
    user.disabled = disabled;
    store.update_user(&user, now)?;
    Ok(user)
}

pub fn set_password(
    store: &dyn Store,
    username: &str,
    pass: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    let mut user = store
        .user_by_username(username)?
        .ok_or_else(|| UserError::NotFound(username.into()))?;
    user.password_hash = Some(password::hash(pass)?);
    user.failed_logins = 0;
    user.locked_until = None;
    store.update_user(&user, now)?;
    Ok(user)
}

/// Issues a new API token for a user; the token is returned once and only its digest is kept.
pub fn issue_token(
    store: &dyn Store,
    username: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<String, UserError> {
    let user = store
        .user_by_username(username)?
        .ok_or_else(|| UserError::NotFound(username.into()))?;
    let token = secret::new_api_token();
    store_token(store, &user, &token, label, valid_for, now)?;
    Ok(token)
}

/// Stores a given token (demo mode uses fixed, documented tokens).
pub fn store_token(
    store: &dyn Store,
    user: &User,
    token: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    store.create_api_token(&NewApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        token_hash: secret::digest(token),
        label: label.into(),
        created_at: now,
        expires_at: valid_for.map(|d| now + d),
    })?;
    Ok(())
}
