//! The LA notification API (SPEC 3.3) and its work queue (docs/WORKFLOW.md):
//! `GET /api/v1/notifications?after=…` (with optional filters), `POST
//! /api/v1/notifications/{id}/ack` (optional body `{outcome, note}`), `POST
//! /api/v1/notifications/ack` (bulk: `{ids, outcome, note}`, reported per id) and `POST
//! /api/v1/notifications/{id}/assign` (`{to}` or `{to_me: true}`). An LA only ever sees and
//! changes its own notifications.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use cpis_auth::Principal;
use cpis_core::inbox::LaInbox;
use cpis_domain::notification::Ack;
use cpis_domain::work_queue::{AckDetails, Assignee};
use cpis_domain::{NhsNumber, NotificationKind, OdsCode};
use cpis_store::{NotificationFilter, NotificationOrder, NotificationQuery};
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<u32>,
}

/// A time filter: an RFC 3339 timestamp, or a date (midnight UTC).
fn time_param(v: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    cpis_domain::parse_iso_date(v)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{name} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            ))
        })
}

/// The work-queue filters of a request (`/api/v1/notifications` and the web inbox), all
/// optional: `unacknowledged`, `assigned_to_me` (true/false), `nhs_number`, `setting` (ODS code),
/// `kind` (a notification kind code), `from` and `to` (dates or RFC 3339 times; `to` excluded).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FilterParams {
    pub unacknowledged: Option<String>,
    pub assigned_to_me: Option<String>,
    pub nhs_number: Option<String>,
    pub setting: Option<String>,
    pub kind: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

fn flag(v: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match present(v) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("on") => Ok(true),
        Some(_) => Err(ApiError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    }
}

impl FilterParams {
    /// The filter, checked: a malformed value is a 400 naming it. `user_id` is whose
    /// "assigned to me" it is.
    pub fn filter(&self, user_id: &str) -> Result<NotificationFilter, ApiError> {
        let nhs_number = present(self.nhs_number.as_deref())
            .map(|v| {
                NhsNumber::parse(&v.replace(' ', ""))
                    .map(|n| n.digits().to_owned())
                    .map_err(|_| {
                        ApiError::BadRequest("nhs_number is not a valid NHS number".into())
                    })
            })
            .transpose()?;
        let setting = present(self.setting.as_deref())
            .map(|v| {
                OdsCode::parse(v)
                    .map(|o| o.as_str().to_owned())
                    .map_err(|_| ApiError::BadRequest("setting must be an ODS code".into()))
            })
            .transpose()?;
        let kind = present(self.kind.as_deref())
            .map(|v| {
                NotificationKind::from_code(v).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "kind must be one of: {}",
                        NotificationKind::ALL.map(NotificationKind::code).join(", ")
                    ))
                })
            })
            .transpose()?;
        Ok(NotificationFilter {
            unacknowledged: flag(self.unacknowledged.as_deref(), "unacknowledged")?,
            assigned_user: flag(self.assigned_to_me.as_deref(), "assigned_to_me")?
                .then(|| user_id.to_owned()),
            nhs_number,
            setting,
            kind,
            from: time_param(self.from.as_deref(), "from")?,
            to: time_param(self.to.as_deref(), "to")?,
        })
    }
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub use cpis_core::delivery::notification_json;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
    ApiQuery(filters): ApiQuery<FilterParams>,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.list", Principal::la_notifications)
        .await?;
    let after = match p.after.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse::<u64>()
            .ok()
            .and_then(|v| crate::extract::cursor(v, "after").ok())
            .ok_or_else(|| {
                ApiError::BadRequest("after must be a cursor from an earlier page".into())
            })?,
    };
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let filter = filters.filter(&cap.actor().id)?;
    // Without filters, the streaming read as before (it may be served by a read replica).
    let unfiltered = filter == NotificationFilter::default();
    let query = NotificationQuery {
        filter,
        order: NotificationOrder::After(after),
        limit,
    };
    let store = state.store.clone();
    let items = tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        if unfiltered {
            inbox.after(after, limit)
        } else {
            inbox.query(&query)
        }
    })
    .await??;
    let next = items.last().map_or(after, |n| n.seq);
    Ok(Json(json!({
        "notifications": items.iter().map(notification_json).collect::<Vec<_>>(),
        "next_cursor": next.to_string(),
        "more": items.len() as u32 == limit,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    outcome: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkAckBody {
    ids: Vec<String>,
    outcome: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    to: Option<String>,
    #[serde(default)]
    to_me: bool,
}

/// Most ids one bulk acknowledgement takes.
pub const MAX_BULK: usize = 500;

/// A JSON body (an empty body is `T::default()` when `empty` is given).
fn body<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    empty: Option<T>,
    shape: &str,
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if let Some(e) = empty {
            return Ok(e);
        }
    }
    serde_json::from_slice(bytes)
        .map_err(|_| ApiError::BadRequest(format!("the body must be JSON: {shape}")))
}

fn details(outcome: Option<&str>, note: Option<&str>) -> Result<AckDetails, ApiError> {
    AckDetails::parse(outcome, note).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn ack_json(ack: &Ack) -> Option<Value> {
    match ack {
        Ack::NotFound => None,
        Ack::Acknowledged(at) => {
            Some(json!({"acknowledged_at": at, "already_acknowledged": false}))
        }
        Ack::AlreadyAcknowledged(at) => {
            Some(json!({"acknowledged_at": at, "already_acknowledged": true}))
        }
    }
}

/// `POST /api/v1/notifications/{id}/ack`, body optional: `{"outcome": "…", "note": "…"}`.
pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.ack", Principal::la_notifications)
        .await?;
    let b: AckBody = body(
        &bytes,
        Some(AckBody::default()),
        "{\"outcome\": \"…\", \"note\": \"…\"} (both optional)",
    )?;
    let details = details(b.outcome.as_deref(), b.note.as_deref())?;
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        caller.trace_id.clone(),
    );
    let ack = tokio::task::spawn_blocking(move || {
        LaInbox::new(store.as_ref(), &cap).acknowledge(&id, &details, now, trace)
    })
    .await??;
    ack_json(&ack).map(Json).ok_or(ApiError::NotFound)
}

/// `POST /api/v1/notifications/ack`: `{"ids": […], "outcome": "…", "note": "…"}`. The body is
/// checked whole first (nothing is written when it is wrong); then each id is acknowledged on
/// its own and reported: `acknowledged`, `already-acknowledged` or `not-found`.
pub async fn bulk_ack(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.ack", Principal::la_notifications)
        .await?;
    let b: BulkAckBody = body(
        &bytes,
        None,
        "{\"ids\": [\"…\"], \"outcome\": \"…\", \"note\": \"…\"}",
    )?;
    if b.ids.is_empty() || b.ids.len() > MAX_BULK {
        return Err(ApiError::BadRequest(format!(
            "ids must list 1 to {MAX_BULK} notification ids"
        )));
    }
    let details = details(b.outcome.as_deref(), b.note.as_deref())?;
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        caller.trace_id.clone(),
    );
    let ids = b.ids;
    let results = tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        ids.iter()
            .map(|id| {
                let ack = inbox.acknowledge(id, &details, now, trace.clone())?;
                let status = match ack {
                    Ack::Acknowledged(_) => "acknowledged",
                    Ack::AlreadyAcknowledged(_) => "already-acknowledged",
                    Ack::NotFound => "not-found",
                };
                let at = match ack {
                    Ack::Acknowledged(t) | Ack::AlreadyAcknowledged(t) => Some(t),
                    Ack::NotFound => None,
                };
                Ok(json!({"id": id, "status": status, "acknowledged_at": at}))
            })
            .collect::<cpis_store::StoreResult<Vec<Value>>>()
    })
    .await??;
    Ok(Json(json!({ "results": results })))
}

/// `POST /api/v1/notifications/{id}/assign`: `{"to": "MASH team"}` or `{"to_me": true}`.
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.assign", Principal::la_notifications)
        .await?;
    let b: AssignBody = body(
        &bytes,
        None,
        "{\"to\": \"team or worker\"} or {\"to_me\": true}",
    )?;
    let to = match (b.to, b.to_me) {
        (Some(to), false) => {
            Some(Assignee::parse(&to).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        (None, true) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give either to (a team or worker) or to_me: true".into(),
            ))
        }
    };
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        caller.trace_id.clone(),
    );
    let assigned = tokio::task::spawn_blocking(move || {
        LaInbox::new(store.as_ref(), &cap)
            .assign(&id, to, now, trace)
            .map(|a| a.map(|to| json!({"id": id, "assigned_to": to, "assigned_at": now})))
    })
    .await??;
    assigned.map(Json).ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize)]
pub struct StreamParams {
    after: Option<u64>,
}

/// `GET /api/v1/notifications/stream?after=…`: server-sent events, one per notification (event id
/// = cursor, so a reconnecting browser resumes with `Last-Event-ID`). The stream wakes when this
/// server commits lookups and polls every 250 ms for notifications written elsewhere (uploads,
/// change feeds, other servers).
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let cap = caller
        .grant(&state, "notification.stream", Principal::la_notifications)
        .await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = crate::extract::cursor(resume.or(p.after).unwrap_or(0), "after")?;
    let store = state.store.clone();
    let commits = state.lookups.commits();
    let events = futures_util::stream::unfold(
        (start, Vec::<Event>::new()),
        move |(mut cursor, mut pending)| {
            let store = store.clone();
            let cap = cap.clone();
            let commits = commits.clone();
            async move {
                loop {
                    // Registered before the store is read, so a commit in between is not missed.
                    let woken = commits.notified();
                    if let Some(e) = pending.pop() {
                        return Some((Ok(e), (cursor, pending)));
                    }
                    let (s, c) = (store.clone(), cap.clone());
                    let page = tokio::task::spawn_blocking(move || {
                        LaInbox::new(s.as_ref(), &c).after(cursor, 100)
                    })
                    .await;
                    match page {
                        Ok(Ok(items)) if !items.is_empty() => {
                            cursor = items.last().map_or(cursor, |n| n.seq);
                            pending = items
                                .iter()
                                .rev()
                                .map(|n| {
                                    Event::default()
                                        .id(n.seq.to_string())
                                        .event(n.kind.code())
                                        .data(notification_json(n).to_string())
                                })
                                .collect();
                        }
                        _ => {
                            tokio::select! {
                                _ = woken => {}
                                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                            }
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
