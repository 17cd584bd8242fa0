//! The LA notification API (SPEC 3.3): `GET /api/v1/notifications?after=…` and
//! `POST /api/v1/notifications/{id}/ack`. An LA only ever sees its own notifications.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use cpis_auth::Principal;
use cpis_core::inbox::LaInbox;
use cpis_domain::notification::Ack;
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<u32>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub use cpis_core::delivery::notification_json;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
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
    let store = state.store.clone();
    let items =
        tokio::task::spawn_blocking(move || LaInbox::new(store.as_ref(), &cap).after(after, limit))
            .await??;
    let next = items.last().map_or(after, |n| n.seq);
    Ok(Json(json!({
        "notifications": items.iter().map(notification_json).collect::<Vec<_>>(),
        "next_cursor": next.to_string(),
        "more": items.len() as u32 == limit,
    })))
}

pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.ack", Principal::la_notifications)
        .await?;
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        caller.trace_id.clone(),
    );
    let ack = tokio::task::spawn_blocking(move || {
        LaInbox::new(store.as_ref(), &cap).acknowledge(&id, now, trace)
    })
    .await??;
    match ack {
        Ack::NotFound => Err(ApiError::NotFound),
        Ack::Acknowledged(at) => Ok(Json(
            json!({"acknowledged_at": at, "already_acknowledged": false}),
        )),
        Ack::AlreadyAcknowledged(at) => Ok(Json(
            json!({"acknowledged_at": at, "already_acknowledged": true}),
        )),
    }
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
