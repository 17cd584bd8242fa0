//! `GET /admin/users`: every user and system (the same store call as `GET /api/v1/admin/users`),
//! and `POST /admin/users/disable` / `POST /admin/users/enable`: the `cpis users disable|enable`
//! change (`cpis_auth::users::set_disabled_audited`), audited as `admin.user.disable|enable` like
//! the CLI does, with the administrator as the actor, in the same transaction as the change. An administrator cannot disable their own account
//! (they would lock themselves out). Sessions and tokens of a disabled account stop working at
//! once (tokens within the authenticator's 10-second cache).

use super::forms::SignedInForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::{ApiError, WebError};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cpis_auth::users::{self, UserError};
use cpis_auth::Principal;
use cpis_domain::{AuditEntry, AuditOutcome};
use cpis_store::{User, UserKind};
use serde::Deserialize;
use std::collections::HashMap;

struct UserView {
    username: String,
    display_name: String,
    organisation: String,
    role: String,
    permissions: String,
    kind: &'static str,
    state: &'static str,
    state_tag: &'static str,
    disabled: bool,
    /// The signed-in administrator's own account: no disable button.
    is_self: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    layout: Layout,
    csrf_token: String,
    errors: Vec<FieldError>,
    /// What the last change did, shown in a confirmation panel.
    changed: Option<String>,
    users: Vec<UserView>,
}

async fn admin(state: &AppState, user: &SignedIn, action: &str) -> Result<(), WebError> {
    user.caller().grant(state, action, Principal::admin).await?;
    Ok(())
}

/// Users with their organisations' names (from the directories), sorted by username.
async fn load(state: &AppState) -> Result<(Vec<User>, HashMap<String, String>), WebError> {
    let store = state.store.clone();
    Ok(tokio::task::spawn_blocking(move || {
        let mut users = store.list_users()?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        let mut names: HashMap<String, String> = store
            .local_authorities()?
            .into_iter()
            .map(|la| (la.ods_code.to_string(), la.name))
            .collect();
        names.extend(
            store
                .care_settings()?
                .into_iter()
                .map(|cs| (cs.ods_code.to_string(), cs.name)),
        );
        Ok::<_, cpis_store::StoreError>((users, names))
    })
    .await??)
}

fn view(u: &User, names: &HashMap<String, String>, me: &str, now: DateTime<Utc>) -> UserView {
    let ods = u.organisation.to_string();
    let (state, state_tag) = if u.disabled {
        ("Disabled", "nhsuk-tag--grey")
    } else if u.locked_until.is_some_and(|t| t > now) {
        ("Locked", "nhsuk-tag--orange")
    } else {
        ("Active", "nhsuk-tag--green")
    };
    UserView {
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        organisation: match names.get(&ods) {
            Some(name) => format!("{name} ({ods})"),
            None => ods,
        },
        role: u.role.clone(),
        permissions: u.permissions.to_string(),
        kind: match u.kind {
            UserKind::User => "Person",
            UserKind::System => "System",
        },
        state,
        state_tag,
        disabled: u.disabled,
        is_self: u.username == me,
    }
}

async fn render(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    errors: Vec<FieldError>,
    changed: Option<String>,
) -> Result<Response, WebError> {
    let (users, names) = load(state).await?;
    let now = state.clock.now();
    let me = user.principal.user_id().to_owned();
    let page = UsersPage {
        layout: Layout::signed_in(user, "Users", "/admin/users")
            .wide()
            .with_errors(!errors.is_empty()),
        csrf_token: user.csrf.clone(),
        errors,
        changed,
        users: users.iter().map(|u| view(u, &names, &me, now)).collect(),
    };
    Ok(page::html(status, &page))
}

pub async fn page(State(state): State<AppState>, user: SignedIn) -> Result<Response, WebError> {
    admin(&state, &user, "admin.users.list").await?;
    render(&state, &user, StatusCode::OK, Vec::new(), None).await
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    username: String,
}

pub async fn disable(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<AccountForm>,
) -> Result<Response, WebError> {
    set_disabled(state, user, form.username, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<AccountForm>,
) -> Result<Response, WebError> {
    set_disabled(state, user, form.username, false).await
}

async fn set_disabled(
    state: AppState,
    user: SignedIn,
    username: String,
    disabled: bool,
) -> Result<Response, WebError> {
    let (verb, action) = if disabled {
        ("disabled", "admin.user.disable")
    } else {
        ("enabled", "admin.user.enable")
    };
    admin(&state, &user, action).await?;
    if disabled && username == user.principal.user_id() {
        let error = FieldError {
            field: "users",
            message: "You cannot disable your own account".into(),
        };
        return render(&state, &user, StatusCode::BAD_REQUEST, vec![error], None).await;
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let entry = AuditEntry {
        time: now,
        actor: user.principal.audit_actor(),
        action: action.into(),
        subject_nhs: None,
        trace_id: Some(user.trace_id.clone()),
        outcome: AuditOutcome::Success,
        detail: Some(format!("{verb} {username} (web)")),
    };
    let name = username.clone();
    // The change and its audit entry commit in one transaction.
    let changed = tokio::task::spawn_blocking(move || {
        users::set_disabled_audited(store.as_ref(), &name, disabled, now, &entry)
    })
    .await?;
    match changed {
        Ok(u) => {
            let message = format!("{} ({}) is now {verb}.", u.display_name, u.username);
            render(&state, &user, StatusCode::OK, Vec::new(), Some(message)).await
        }
        Err(UserError::NotFound(_)) => {
            let error = FieldError {
                field: "users",
                message: "There is no such account. It may have been removed: check the list"
                    .into(),
            };
            render(&state, &user, StatusCode::NOT_FOUND, vec![error], None).await
        }
        Err(UserError::Store(e)) => Err(e.into()),
        Err(e) => Err(WebError(ApiError::Internal(e.to_string()))),
    }
}
