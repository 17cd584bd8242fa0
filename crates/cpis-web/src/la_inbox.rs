//! The local authority's notification inbox: `GET /la/notifications` (newest first, older pages
//! by `?before=<cursor>`), `POST /la/notifications/ack` (the checked rows, or the one row whose
//! "Acknowledge" button was pressed; the same path as `POST /api/v1/notifications/{id}/ack`, so
//! idempotent and audited) and `GET /la/notifications/rows?after=<cursor>` (the rows newer than a
//! cursor, as HTML table rows: `assets/la-inbox.js` inserts them when the server-sent events
//! stream `GET /api/v1/notifications/stream` says something arrived).

use super::forms::SignedInForm;
use super::la_upload::{grouped_text, when};
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::capability::LaNotifications;
use cpis_auth::Principal;
use cpis_core::inbox::LaInbox;
use cpis_domain::notification::Ack;
use cpis_domain::{Notification, NotificationKind, SettingType};
use serde::Deserialize;
use serde_json::Value;

/// Notifications per page.
const PAGE: u32 = 25;
/// Most notifications acknowledged by one form post.
const MAX_ACK: usize = 200;

/// One notification as a table row (`templates/partials/la_inbox_rows.html`).
pub struct NotificationRow {
    pub id: String,
    pub seq: u64,
    pub kind: &'static str,
    pub kind_class: &'static str,
    pub child: String,
    pub nhs_number: String,
    pub place: String,
    pub time: String,
    pub acknowledged: Option<String>,
    /// What a screen reader hears when the row arrives live.
    pub announce: String,
}

#[derive(Template)]
#[template(path = "partials/la_inbox_rows.html")]
struct RowsFragment {
    rows: Vec<NotificationRow>,
}

#[derive(Template)]
#[template(path = "la_inbox.html")]
struct InboxPage {
    layout: Layout,
    errors: Vec<FieldError>,
    csrf_token: String,
    rows: Vec<NotificationRow>,
    /// The newest cursor shown: the live stream starts after it (first page only).
    live_after: Option<u64>,
    before: Option<u64>,
    acknowledged: Option<u64>,
    previous: Option<super::la_pagination::PageLink>,
    next: Option<super::la_pagination::PageLink>,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A notification as people read it, from its stored payload.
pub fn row_of(n: &Notification) -> NotificationRow {
    let body: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
    let (kind, kind_class) = match n.kind {
        NotificationKind::Access => ("Child seen", "nhsuk-tag--blue"),
        NotificationKind::InactiveNhsNumber => ("NHS number changed", "nhsuk-tag--orange"),
        NotificationKind::UploadReport => ("Upload report", "nhsuk-tag--grey"),
        NotificationKind::Escalation => ("Overdue", "nhsuk-tag--red"),
        NotificationKind::WasNotBrought => ("Was not brought", "nhsuk-tag--orange"),
        NotificationKind::Birth => ("Baby born", "nhsuk-tag--purple"),
        NotificationKind::BirthReminder => ("No plan for baby", "nhsuk-tag--orange"),
        NotificationKind::AdoptionInvalidation => {
            ("Adoption: number invalidated", "nhsuk-tag--grey")
        }
    };
    let name = [
        text(&body, &["child", "given_name"]),
        text(&body, &["child", "family_name"]),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let nhs = text(&body, &["child", "nhs_number"])
        .or_else(|| text(&body, &["nhs_number"]))
        .map(grouped_text)
        .unwrap_or_default();
    let child = if name.is_empty() {
        text(&body, &["local_id"])
            .map_or_else(|| "Name not given".into(), |l| format!("Local ID {l}"))
    } else {
        name
    };
    let place = match n.kind {
        NotificationKind::Access => {
            let org = text(&body, &["access", "organisation", "name"]).unwrap_or("Unknown setting");
            match text(&body, &["access", "setting_type"])
                .and_then(|t| t.parse::<SettingType>().ok())
            {
                Some(t) => format!("{org} ({})", super::format::setting(t)),
                None => org.to_owned(),
            }
        }
        NotificationKind::InactiveNhsNumber => match text(&body, &["replacement_nhs_number"]) {
            Some(new) => format!("Replaced by {}", grouped_text(new)),
            None => format!(
                "Number is now {}",
                text(&body, &["status"]).unwrap_or("inactive")
            ),
        },
        _ => String::new(),
    };
    let time = text(&body, &["access", "time"])
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(n.created_at, |t| t.with_timezone(&chrono::Utc));
    let time = when(time);
    let announce = match n.kind {
        NotificationKind::Access => {
            format!("New notification: {child} was seen at {place}, {time}")
        }
        _ => format!("New notification: {kind}, {child}"),
    };
    NotificationRow {
        id: n.id.clone(),
        seq: n.seq,
        kind,
        kind_class,
        child,
        nhs_number: nhs,
        place,
        time,
        acknowledged: n.acknowledged_at.map(when),
        announce,
    }
}

async fn inbox_capability(
    state: &AppState,
    user: &SignedIn,
    action: &str,
) -> Result<LaNotifications, WebError> {
    Ok(user
        .caller()
        .grant(state, action, Principal::la_notifications)
        .await?)
}

#[derive(Deserialize)]
pub struct InboxQuery {
    before: Option<String>,
    acknowledged: Option<String>,
}

fn cursor(v: Option<&str>) -> Result<Option<u64>, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse::<u64>()
            .ok()
            .and_then(|c| cpis_api::extract::cursor(c, "before").ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest("That page of notifications does not exist.".into())
            }),
    }
}

async fn inbox_page(
    state: &AppState,
    user: &SignedIn,
    cap: &LaNotifications,
    before: Option<u64>,
) -> Result<InboxPage, WebError> {
    let (store, cap) = (state.store.clone(), cap.clone());
    let mut items = tokio::task::spawn_blocking(move || {
        LaInbox::new(store.as_ref(), &cap).newest(before, PAGE + 1)
    })
    .await??;
    let more = items.len() > PAGE as usize;
    items.truncate(PAGE as usize);
    let newest = items.first().map(|n| n.seq);
    let oldest = items.last().map(|n| n.seq);
    let next = match (more, oldest) {
        (true, Some(o)) => Some(super::la_pagination::PageLink {
            href: format!("/la/notifications?before={o}"),
            label: "Older notifications".into(),
        }),
        _ => None,
    };
    // The page before this one holds the cursors from `before` up (cursors count 1, 2, 3… per LA).
    let previous = before.map(|b| super::la_pagination::PageLink {
        href: format!(
            "/la/notifications?before={}",
            b.saturating_add(u64::from(PAGE))
        ),
        label: "Newer notifications".into(),
    });
    Ok(InboxPage {
        layout: Layout::signed_in(user, "Notifications", "/la/notifications").wide(),
        errors: Vec::new(),
        csrf_token: user.csrf.clone(),
        rows: items.iter().map(row_of).collect(),
        live_after: if before.is_none() {
            Some(newest.unwrap_or(0))
        } else {
            None
        },
        before,
        acknowledged: None,
        previous,
        next,
    })
}

/// `GET /la/notifications`.
pub async fn inbox(
    State(state): State<AppState>,
    user: SignedIn,
    Query(q): Query<InboxQuery>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.list").await?;
    let before = cursor(q.before.as_deref())?;
    let mut page = inbox_page(&state, &user, &cap, before).await?;
    page.acknowledged = q.acknowledged.as_deref().and_then(|a| a.parse().ok());
    Ok(page::html(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct RowsQuery {
    after: Option<String>,
}

/// `GET /la/notifications/rows?after=<cursor>`: newer rows, newest first, as `<tr>` elements.
pub async fn rows(
    State(state): State<AppState>,
    user: SignedIn,
    Query(q): Query<RowsQuery>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.list").await?;
    let after = cursor(q.after.as_deref())?.unwrap_or(0);
    let store = state.store.clone();
    let items =
        tokio::task::spawn_blocking(move || LaInbox::new(store.as_ref(), &cap).after(after, PAGE))
            .await??;
    let fragment = RowsFragment {
        rows: items.iter().rev().map(row_of).collect(),
    };
    let mut resp = page::html(StatusCode::OK, &fragment);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(resp.into_response())
}

/// `POST /la/notifications/ack`: fields `ack` (one row's button) or `id` (checked rows),
/// `before` (the page to go back to).
pub async fn ack(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.ack").await?;
    let field = |k: &'static str| {
        form.iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let one: Vec<String> = field("ack").take(1).collect();
    let ids: Vec<String> = if one.is_empty() {
        field("id").take(MAX_ACK).collect()
    } else {
        one
    };
    let before = cursor(field("before").next().as_deref()).unwrap_or(None);
    if ids.is_empty() {
        let mut page = inbox_page(&state, &user, &cap, before).await?;
        page.layout = page.layout.with_errors(true);
        page.errors.push(FieldError {
            field: "notifications",
            message: "Select the notifications to acknowledge".into(),
        });
        return Ok(page::html(StatusCode::BAD_REQUEST, &page));
    }
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        Some(user.trace_id.clone()),
    );
    let acks = tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        ids.iter()
            .map(|id| inbox.acknowledge(id, &cpis_domain::work_queue::AckDetails::receipt(), now, trace.clone()))
            .collect::<Result<Vec<Ack>, _>>()
    })
    .await??;
    let done = acks
        .iter()
        .filter(|a| matches!(a, Ack::Acknowledged(_) | Ack::AlreadyAcknowledged(_)))
        .count() as u64;
    let back = match before {
        Some(b) => format!("/la/notifications?before={b}&acknowledged={done}"),
        None => format!("/la/notifications?acknowledged={done}"),
    };
    Ok(page::see_other(&back))
}
