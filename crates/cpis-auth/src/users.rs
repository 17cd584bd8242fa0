//! Administering identities: add users and systems, disable them, issue API tokens.
//!
//! Each change comes in two forms. The `…_audited` form is what operators and administrators use
//! (`cpis users`, the web admin page): the change and its audit entry are written in one store
//! transaction ([`Store::change_identity`]), so an administrative change is never stored without
//! its audit entry, and a change that fails appends none. The plain form writes the change alone,
//! for fixtures, demo data and tests. Both share the same preparation (validation, reading the
//! user, hashing) and differ only in that last write.

use crate::{password, secret};
use chrono::{DateTime, Duration, Utc};
use cpis_domain::{AuditEntry, OdsCode, Permissions};
use cpis_store::{IdentityChange, NewApiToken, Store, StoreError, User, UserKind};

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

/// Writes a prepared change: alone, or with its audit entry in the same transaction.
fn apply(
    store: &dyn Store,
    change: &IdentityChange,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<(), StoreError> {
    match (audit, change) {
        (Some(audit), change) => store.change_identity(change, now, audit),
        (None, IdentityChange::CreateUser(user)) => store.create_user(user),
        (None, IdentityChange::UpdateUser(user)) => store.update_user(user, now),
        (None, IdentityChange::CreateToken(token)) => store.create_api_token(token),
        // Only ever written with its audit entry (`crate::clients::register_audited`).
        (None, IdentityChange::RegisterClient { .. }) => Err(StoreError::Constraint(
            "clients are registered with their audit entry".into(),
        )),
    }
}

fn existing(store: &dyn Store, username: &str) -> Result<User, UserError> {
    store
        .user_by_username(username)?
        .ok_or_else(|| UserError::NotFound(username.into()))
}

/// Changes a user read by name with `edit`, and writes it back.
fn update(
    store: &dyn Store,
    username: &str,
    edit: impl FnOnce(&mut User) -> Result<(), UserError>,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<User, UserError> {
    let mut user = existing(store, username)?;
    edit(&mut user)?;
    apply(store, &IdentityChange::UpdateUser(user.clone()), now, audit)?;
    Ok(user)
}

fn add_with(
    store: &dyn Store,
    new: NewUser,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<User, UserError> {
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
    apply(store, &IdentityChange::CreateUser(user.clone()), now, audit)?;
    Ok(user)
}

pub fn add(store: &dyn Store, new: NewUser, now: DateTime<Utc>) -> Result<User, UserError> {
    add_with(store, new, now, None)
}

/// [`add`], written with its audit entry in one transaction.
pub fn add_audited(
    store: &dyn Store,
    new: NewUser,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<User, UserError> {
    add_with(store, new, now, Some(audit))
}

fn set_disabled_with(
    store: &dyn Store,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<User, UserError> {
    let edit = |user: &mut User| {
        user.disabled = disabled;
        Ok(())
    };
    update(store, username, edit, now, audit)
}

pub fn set_disabled(
    store: &dyn Store,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    set_disabled_with(store, username, disabled, now, None)
}

/// [`set_disabled`], written with its audit entry in one transaction.
pub fn set_disabled_audited(
    store: &dyn Store,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<User, UserError> {
    set_disabled_with(store, username, disabled, now, Some(audit))
}

fn set_password_with(
    store: &dyn Store,
    username: &str,
    pass: &str,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<User, UserError> {
    let edit = |user: &mut User| {
        user.password_hash = Some(password::hash(pass)?);
        user.failed_logins = 0;
        user.locked_until = None;
        Ok(())
    };
    update(store, username, edit, now, audit)
}

/// Sets a password (and clears a lockout).
pub fn set_password(
    store: &dyn Store,
    username: &str,
    pass: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    set_password_with(store, username, pass, now, None)
}

/// [`set_password`], written with its audit entry in one transaction.
pub fn set_password_audited(
    store: &dyn Store,
    username: &str,
    pass: &str,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<User, UserError> {
    set_password_with(store, username, pass, now, Some(audit))
}

fn issue_token_with(
    store: &dyn Store,
    username: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry>,
) -> Result<String, UserError> {
    let user = existing(store, username)?;
    let token = secret::new_api_token();
    let change = IdentityChange::CreateToken(new_token(&user, &token, label, valid_for, now));
    apply(store, &change, now, audit)?;
    Ok(token)
}

/// Issues a new API token for a user; the token is returned once and only its digest is kept.
pub fn issue_token(
    store: &dyn Store,
    username: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<String, UserError> {
    issue_token_with(store, username, label, valid_for, now, None)
}

/// [`issue_token`], written with its audit entry in one transaction.
pub fn issue_token_audited(
    store: &dyn Store,
    username: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<String, UserError> {
    issue_token_with(store, username, label, valid_for, now, Some(audit))
}

/// The stored form of a token: its digest, never the token.
fn new_token(
    user: &User,
    token: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
) -> NewApiToken {
    NewApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        token_hash: secret::digest(token),
        label: label.into(),
        created_at: now,
        expires_at: valid_for.map(|d| now + d),
    }
}

/// Stores a given token (demo mode uses fixed, documented tokens). Not audited: for demo data
/// and tests.
pub fn store_token(
    store: &dyn Store,
    user: &User,
    token: &str,
    label: &str,
    valid_for: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    let change = IdentityChange::CreateToken(new_token(user, token, label, valid_for, now));
    apply(store, &change, now, None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use cpis_domain::{AuditActor, AuditOutcome, Permission};
    use cpis_store::{AuditQuery, AuditVerification};

    /// Whole seconds: the store keeps microseconds.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    fn store() -> (tempfile::TempDir, Box<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        (dir, cpis_store::open(&url).unwrap())
    }

    fn new_user(username: &str, password: Option<&str>) -> NewUser {
        NewUser {
            username: username.into(),
            display_name: username.into(),
            kind: UserKind::User,
            organisation: OdsCode::parse("CPISOPS").unwrap(),
            role: "Operator".into(),
            permissions: Permissions::new([Permission::Admin]),
            password: password.map(str::to_owned),
        }
    }

    fn entry(action: &str, now: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            time: now,
            actor: AuditActor {
                id: "operator:ops".into(),
                name: "ops".into(),
                organisation: Some("CPISOPS".into()),
                role: "Operator".into(),
            },
            action: action.into(),
            subject_nhs: None,
            trace_id: None,
            outcome: AuditOutcome::Success,
            detail: Some(format!("{action} detail")),
        }
    }

    /// The actions in the audit log, oldest first; the chain must verify.
    fn actions(store: &dyn Store) -> Vec<String> {
        let query = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        let records = store.audit_search(&query).unwrap();
        match store.audit_verify().unwrap() {
            AuditVerification::Intact { entries, .. } => assert_eq!(entries, records.len() as u64),
            broken => panic!("{broken:?}"),
        }
        records.into_iter().rev().map(|r| r.entry.action).collect()
    }

    #[test]
    fn audited_changes_write_their_entry_and_refused_ones_none() {
        let (_dir, store) = store();
        let store = store.as_ref();
        let now = now();

        let added =
            add_audited(store, new_user("ann.admin", None), now, &entry("add", now)).unwrap();
        assert_eq!(store.user_by_username("ann.admin").unwrap(), Some(added));
        assert_eq!(actions(store), ["add"]);

        // Refused before anything is written: no entry.
        let e = entry("refused", now);
        let twice = add_audited(store, new_user("ann.admin", None), now, &e);
        assert!(matches!(twice, Err(UserError::Exists(_))), "{twice:?}");
        let bad = add_audited(store, new_user("a", None), now, &e);
        assert!(matches!(bad, Err(UserError::BadUsername)), "{bad:?}");
        let weak = add_audited(store, new_user("weak.pass", Some("short")), now, &e);
        assert!(matches!(weak, Err(UserError::Password(_))), "{weak:?}");
        for missing in [
            set_disabled_audited(store, "nobody", true, now, &e),
            set_password_audited(store, "nobody", "a long enough password", now, &e),
        ] {
            assert!(
                matches!(missing, Err(UserError::NotFound(_))),
                "{missing:?}"
            );
        }
        let no_token = issue_token_audited(store, "nobody", "cli", None, now, &e);
        assert!(matches!(no_token, Err(UserError::NotFound(_))));
        assert_eq!(store.list_users().unwrap().len(), 1);
        assert_eq!(actions(store), ["add"]);

        let disabled =
            set_disabled_audited(store, "ann.admin", true, now, &entry("disable", now)).unwrap();
        assert!(disabled.disabled);
        assert!(
            store
                .user_by_username("ann.admin")
                .unwrap()
                .unwrap()
                .disabled
        );
        set_disabled_audited(store, "ann.admin", false, now, &entry("enable", now)).unwrap();

        let mut locked = store.user_by_username("ann.admin").unwrap().unwrap();
        locked.failed_logins = 5;
        locked.locked_until = Some(now + Duration::minutes(15));
        store.update_user(&locked, now).unwrap();
        let e = entry("password", now);
        set_password_audited(store, "ann.admin", "a long enough password", now, &e).unwrap();
        let user = store.user_by_username("ann.admin").unwrap().unwrap();
        assert!(password::verify(
            user.password_hash.as_deref().unwrap(),
            "a long enough password"
        ));
        assert_eq!((user.failed_logins, user.locked_until), (0, None));

        let token = issue_token_audited(store, "ann.admin", "cli", None, now, &entry("token", now))
            .unwrap();
        let owner = store
            .user_by_token_hash(&secret::digest(&token), now)
            .unwrap();
        assert_eq!(owner.map(|u| u.username).as_deref(), Some("ann.admin"));

        assert_eq!(
            actions(store),
            ["add", "disable", "enable", "password", "token"]
        );
    }

    #[test]
    fn plain_changes_write_no_entry() {
        let (_dir, store) = store();
        let store = store.as_ref();
        let now = now();
        let user = add(store, new_user("fixture.user", None), now).unwrap();
        set_disabled(store, "fixture.user", true, now).unwrap();
        issue_token(store, "fixture.user", "test", None, now).unwrap();
        store_token(store, &user, "cpis_fixed_token", "demo", None, now).unwrap();
        assert!(store
            .user_by_token_hash(&secret::digest("cpis_fixed_token"), now)
            .unwrap()
            .is_some());
        assert!(actions(store).is_empty());
    }
}
