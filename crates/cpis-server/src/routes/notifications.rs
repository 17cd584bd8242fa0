//! The LA notification API (SPEC 3.3): `GET /api/v1/notifications?after=…` and
//! `POST /api/v1/notifications/{id}/ack`. An LA only ever sees its own notifications.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use cpis_auth::Principal;
use cpis_domain::notification::{Ack, Notification};
use cpis_domain::{AuditEntry, AuditOutcome};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct ListParams {
    after: Option<String>,
    limit: Option<u32>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A notification as the LA receives it: its payload with the cursor and acknowledgement.
pub fn notification_json(n: &Notification) -> Value {
    let mut body: Value = serde_json::from_str(&n.payload).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), json!(n.id));
        obj.insert("kind".into(), json!(n.kind.code()));
        obj.insert("cursor".into(), json!(n.seq.to_string()));
        obj.insert("acknowledged_at".into(), json!(n.acknowledged_at));
    }
    body
}

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
    let la = cap.la().clone();
    let items =
        tokio::task::spawn_blocking(move || store.notifications(&la, after, limit)).await??;
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
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "notification.ack", Principal::la_notifications)
        .await?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound);
    }
    let store = state.store.clone();
    let now = state.clock.now();
    let la = cap.la().clone();
    let by = cap.actor().id.clone();
    let entry = AuditEntry {
        time: now,
        actor: cap.actor().clone(),
        action: "notification.ack".into(),
        subject_nhs: None,
        trace_id: caller.trace_id.clone(),
        outcome: AuditOutcome::Success,
        detail: Some(format!("notification {id}")),
    };
    let ack = tokio::task::spawn_blocking(move || {
        let ack = store.acknowledge(&la, &id, &by, now)?;
        if matches!(ack, Ack::Acknowledged(_)) {
            store.append_audit(&entry)?;
        }
        Ok::<_, cpis_store::StoreError>(ack)
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
