//! `GET /api/v1/audit` (auditor): search the audit trail by NHS number, user, organisation,
//! action and time; `GET /api/v1/audit/verify` (auditor): check the hash chain;
//! `GET /api/v1/admin/alerts` (admin): anomaly alerts; `GET /api/v1/admin/users` (admin).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use cpis_auth::Principal;
use cpis_core::audit_search::{AuditTrail, SearchNote};
use cpis_domain::NhsNumber;
use cpis_store::AuditQuery;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    nhs_number: Option<String>,
    user: Option<String>,
    organisation: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<u64>,
    limit: Option<u32>,
}

fn time(s: &Option<String>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    s.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::BadRequest(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "audit.search", Principal::auditor)
        .await?;
    let subject = non_empty(&p.nhs_number)
        .map(|n| NhsNumber::parse(&n).map_err(|e| ApiError::BadRequest(format!("nhs_number: {e}"))))
        .transpose()?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    let q = AuditQuery {
        subject_nhs: subject,
        actor_id: non_empty(&p.user),
        organisation: non_empty(&p.organisation),
        action_prefix: non_empty(&p.action),
        from: time(&p.from, "from")?,
        to: time(&p.to, "to")?,
        before_seq: p
            .before
            .map(|b| crate::extract::cursor(b, "before"))
            .transpose()?,
        limit,
    };
    let note = SearchNote {
        now: state.clock.now(),
        trace_id: caller.trace_id.clone(),
        detail: search_detail(&q, subject.is_some()),
    };
    let store = state.store.clone();
    let found =
        tokio::task::spawn_blocking(move || AuditTrail::new(store.as_ref(), &cap).search(&q, note))
            .await??;
    Ok(Json(
        json!({ "entries": found.entries, "next_before": found.next_before }),
    ))
}

/// The `audit.search` entry's text: a sentence naming the filters used, never debug output.
fn search_detail(q: &AuditQuery, about_a_child: bool) -> String {
    let mut filters = Vec::new();
    if let Some(u) = &q.actor_id {
        filters.push(format!("user {u}"));
    }
    if let Some(o) = &q.organisation {
        filters.push(format!("organisation {o}"));
    }
    if let Some(a) = &q.action_prefix {
        filters.push(format!("action starting {a}"));
    }
    if let Some(t) = q.from {
        filters.push(format!("from {}", t.to_rfc3339()));
    }
    if let Some(t) = q.to {
        filters.push(format!("to {}", t.to_rfc3339()));
    }
    let child = if about_a_child {
        " for the NHS number in this entry"
    } else {
        ""
    };
    if filters.is_empty() {
        format!("Searched the audit trail through the API{child}, with no other filters.")
    } else {
        format!(
            "Searched the audit trail through the API{child}: {}.",
            filters.join(", ")
        )
    }
}

pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "audit.verify", Principal::auditor)
        .await?;
    let store = state.store.clone();
    let v = tokio::task::spawn_blocking(move || AuditTrail::new(store.as_ref(), &cap).verify())
        .await??;
    Ok(Json(json!({ "result": v })))
}

pub async fn alerts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller
        .grant(&state, "admin.alerts", Principal::admin)
        .await?;
    let q = AuditQuery {
        action_prefix: Some("security.".into()),
        limit: 200,
        ..Default::default()
    };
    let store = state.store.clone();
    let records = tokio::task::spawn_blocking(move || store.audit_search(&q)).await??;
    let before = (records.len() == 200)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({ "entries": records, "next_before": before })))
}

pub async fn users(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller
        .grant(&state, "admin.users.list", Principal::admin)
        .await?;
    let store = state.store.clone();
    let users = tokio::task::spawn_blocking(move || store.list_users()).await??;
    Ok(Json(json!({
        "users": users.iter().map(|u| json!({
            "id": u.id,
            "username": u.username,
            "display_name": u.display_name,
            "kind": u.kind.code(),
            "organisation": u.organisation,
            "role": u.role,
            "permissions": u.permissions.to_string(),
            "disabled": u.disabled,
            "locked_until": u.locked_until,
        })).collect::<Vec<_>>()
    })))
}
