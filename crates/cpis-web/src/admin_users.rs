//! `GET /admin/users` (`?page=2`): every user and system (the same store call as
//! `GET /api/v1/admin/users`), [`PAGE_SIZE`] a page; `POST /admin/users` searches them (the
//! search words are account names, so they travel in the POST body, never in a URL, and its
//! pages are posted too). `POST /admin/users/disable` / `POST /admin/users/enable`: the
//! `cpis users disable|enable` change (`cpis_auth::users::set_disabled_audited`), audited as
//! `admin.user.disable|enable` like the CLI does, with the administrator as the actor, in the
//! same transaction as the change. Disabling asks first: without `confirm=yes` the answer is a
//! confirmation page (no JavaScript needed), and only its button disables. An administrator
//! cannot disable their own account (they would lock themselves out). Sessions and tokens of a
//! disabled account stop working at once (tokens within the authenticator's 10-second cache).

use super::forms::SignedInForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::users::{self, UserError};
use cpis_auth::Principal;
use cpis_domain::AuditEntry;
use cpis_store::{User, UserKind};
use serde::Deserialize;
use std::collections::HashMap;

/// Accounts shown per page.
pub const PAGE_SIZE: usize = 25;

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
    /// This page's accounts.
    users: Vec<UserView>,
    /// The search words (empty: every account).
    q: String,
    /// This page's number (1-based), for the forms that come back to it.
    page: usize,
    /// `Showing 1 to 25 of 258 accounts` or `No accounts match …`.
    showing: String,
    /// Links (no search) or posted buttons (a search) to the neighbouring pages.
    previous: Option<UsersPageLink>,
    next: Option<UsersPageLink>,
}

struct UsersPageLink {
    page: usize,
    href: String,
    label: String,
}

#[derive(Template)]
#[template(path = "admin_user_disable.html")]
struct ConfirmPage {
    layout: Layout,
    csrf_token: String,
    account: UserView,
    q: String,
    page: usize,
    back: String,
}

/// Whether an account matches every word of the search (case-insensitively) in its name,
/// username, organisation (code or name), role, kind or state.
fn matches(words: &[String], v: &UserView) -> bool {
    let text = [
        v.display_name.as_str(),
        v.username.as_str(),
        v.organisation.as_str(),
        v.role.as_str(),
        v.kind,
        v.state,
    ]
    .join(" ")
    .to_lowercase();
    words.iter().all(|w| text.contains(w.as_str()))
}

fn words(q: &str) -> Vec<String> {
    q.split_whitespace().map(str::to_lowercase).collect()
}

/// The unfiltered list's page `n`.
fn page_href(n: usize) -> String {
    if n <= 1 {
        "/admin/users".into()
    } else {
        format!("/admin/users?page={n}")
    }
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

/// Where the list was: the search words and the page, carried through the forms so a change
/// comes back to the same place.
#[derive(Deserialize, Default, Clone)]
pub struct ListPlace {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

impl ListPlace {
    fn page(&self) -> usize {
        self.page
            .as_deref()
            .and_then(|p| p.trim().parse::<usize>().ok())
            .filter(|p| (1..=100_000).contains(p))
            .unwrap_or(1)
    }
    fn q(&self) -> String {
        self.q.trim().chars().take(100).collect()
    }
}

async fn render(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    errors: Vec<FieldError>,
    changed: Option<String>,
    place: &ListPlace,
) -> Result<Response, WebError> {
    let (users, names) = load(state).await?;
    let now = state.clock.now();
    let me = user.principal.user_id().to_owned();
    let q = place.q();
    let filter = words(&q);
    let all: Vec<UserView> = users
        .iter()
        .map(|u| view(u, &names, &me, now))
        .filter(|v| matches(&filter, v))
        .collect();
    let total = all.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    // A page past the end (the list shrank under a search) shows the last one.
    let page_no = place.page().min(pages);
    let first = (page_no - 1) * PAGE_SIZE;
    let shown: Vec<UserView> = all.into_iter().skip(first).take(PAGE_SIZE).collect();
    let showing = match (total, q.is_empty()) {
        (0, true) => "No accounts".to_owned(),
        (0, false) => format!("No accounts match \u{201c}{q}\u{201d}"),
        (1, true) => "Showing the only account".to_owned(),
        (1, false) => format!("Showing 1 account matching \u{201c}{q}\u{201d}"),
        (n, true) => format!(
            "Showing {} to {} of {n} accounts",
            first + 1,
            first + shown.len()
        ),
        (n, false) => format!(
            "Showing {} to {} of {n} accounts matching \u{201c}{q}\u{201d}",
            first + 1,
            first + shown.len()
        ),
    };
    let link = |n: usize| UsersPageLink {
        page: n,
        href: page_href(n),
        label: format!("Page {n} of {pages}"),
    };
    let page = UsersPage {
        layout: Layout::signed_in(user, "Users", "/admin/users")
            .wide()
            .with_errors(!errors.is_empty()),
        csrf_token: user.csrf.clone(),
        errors,
        changed,
        users: shown,
        q,
        page: page_no,
        showing,
        previous: (page_no > 1).then(|| link(page_no - 1)),
        next: (page_no < pages).then(|| link(page_no + 1)),
    };
    Ok(page::html(status, &page))
}

/// `GET /admin/users` (`?page=2`): every account, a page at a time.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Query(place): Query<ListPlace>,
) -> Result<Response, WebError> {
    admin(&state, &user, "admin.users.list").await?;
    // Search words never come from a URL.
    let place = ListPlace {
        q: String::new(),
        ..place
    };
    render(&state, &user, StatusCode::OK, Vec::new(), None, &place).await
}

/// `POST /admin/users`: a search (and its pages).
pub async fn search(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<ListPlace>,
) -> Result<Response, WebError> {
    admin(&state, &user, "admin.users.list").await?;
    render(&state, &user, StatusCode::OK, Vec::new(), None, &form).await
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    username: String,
    /// `yes` on the confirmation page's button; anything else asks first.
    #[serde(default)]
    confirm: String,
    #[serde(flatten)]
    place: ListPlace,
}

/// `POST /admin/users/disable`: the confirmation page, or (with `confirm=yes`) the change.
pub async fn disable(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<AccountForm>,
) -> Result<Response, WebError> {
    if form.confirm != "yes" {
        return confirm_disable(state, user, form).await;
    }
    set_disabled(state, user, form.username, true, &form.place).await
}

pub async fn enable(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<AccountForm>,
) -> Result<Response, WebError> {
    set_disabled(state, user, form.username, false, &form.place).await
}

/// "Are you sure?": the account, what disabling does, a red button that posts `confirm=yes`
/// and a way back. Nothing is changed or audited as a change here.
async fn confirm_disable(
    state: AppState,
    user: SignedIn,
    form: AccountForm,
) -> Result<Response, WebError> {
    admin(&state, &user, "admin.user.disable").await?;
    let place = form.place;
    if form.username == user.principal.user_id() {
        let error = own_account_error();
        return render(
            &state,
            &user,
            StatusCode::BAD_REQUEST,
            vec![error],
            None,
            &place,
        )
        .await;
    }
    let (users, names) = load(&state).await?;
    let now = state.clock.now();
    let me = user.principal.user_id().to_owned();
    let Some(account) = users
        .iter()
        .find(|u| u.username == form.username)
        .map(|u| view(u, &names, &me, now))
    else {
        let error = no_such_account();
        return render(
            &state,
            &user,
            StatusCode::NOT_FOUND,
            vec![error],
            None,
            &place,
        )
        .await;
    };
    let page_no = place.page();
    let q = place.q();
    let page = ConfirmPage {
        layout: Layout::signed_in(&user, "Disable this account?", "/admin/users"),
        csrf_token: user.csrf.clone(),
        account,
        back: page_href(page_no),
        q,
        page: page_no,
    };
    Ok(page::html(StatusCode::OK, &page))
}

fn own_account_error() -> FieldError {
    FieldError {
        field: "users",
        message: "You cannot disable your own account".into(),
    }
}

fn no_such_account() -> FieldError {
    FieldError {
        field: "users",
        message: "There is no such account. It may have been removed: check the list".into(),
    }
}

async fn set_disabled(
    state: AppState,
    user: SignedIn,
    username: String,
    disabled: bool,
    place: &ListPlace,
) -> Result<Response, WebError> {
    let (verb, action) = if disabled {
        ("disabled", "admin.user.disable")
    } else {
        ("enabled", "admin.user.enable")
    };
    admin(&state, &user, action).await?;
    if disabled && username == user.principal.user_id() {
        let error = own_account_error();
        return render(
            &state,
            &user,
            StatusCode::BAD_REQUEST,
            vec![error],
            None,
            place,
        )
        .await;
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let entry = AuditEntry::new(
        now,
        user.principal.audit_actor(),
        action,
        Some(user.trace_id.clone()),
    )
    .detail(format!("{verb} {username} (web)"));
    let name = username.clone();
    // The change and its audit entry commit in one transaction.
    let changed = tokio::task::spawn_blocking(move || {
        users::set_disabled_audited(store.as_ref(), &name, disabled, now, &entry)
    })
    .await?;
    match changed {
        Ok(u) => {
            let message = format!("{} ({}) is now {verb}.", u.display_name, u.username);
            render(
                &state,
                &user,
                StatusCode::OK,
                Vec::new(),
                Some(message),
                place,
            )
            .await
        }
        Err(UserError::NotFound(_)) => {
            let error = no_such_account();
            render(
                &state,
                &user,
                StatusCode::NOT_FOUND,
                vec![error],
                None,
                place,
            )
            .await
        }
        Err(UserError::Store(e)) => Err(e.into()),
        Err(e) => Err(WebError(ApiError::internal(e))),
    }
}
