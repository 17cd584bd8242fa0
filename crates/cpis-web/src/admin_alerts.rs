//! `GET /admin/alerts`: lookup anomaly alerts (`security.*` audit entries, newest first), the
//! same query as `GET /api/v1/admin/alerts`. Alerts name the identity that was throttled and why;
//! they carry no NHS number.

use super::format;
use super::page::{self, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use cpis_api::AppState;
use cpis_auth::Principal;
use cpis_store::AuditQuery;

/// Most alerts shown (as the API).
const LIMIT: u32 = 200;

struct AlertView {
    time: String,
    who: String,
    who_detail: String,
    action: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_alerts.html")]
struct AlertsPage {
    layout: Layout,
    alerts: Vec<AlertView>,
    limit: u32,
}

pub async fn page(State(state): State<AppState>, user: SignedIn) -> Result<Response, WebError> {
    user.caller()
        .grant(&state, "admin.alerts", Principal::admin)
        .await?;
    let q = AuditQuery {
        action_prefix: Some("security.".into()),
        limit: LIMIT,
        ..Default::default()
    };
    let store = state.store.clone();
    let records = tokio::task::spawn_blocking(move || store.audit_search(&q)).await??;
    let alerts = records
        .iter()
        .map(|r| AlertView {
            time: format::uk_time(r.entry.time),
            who: r.entry.actor.name.clone(),
            who_detail: match &r.entry.actor.organisation {
                Some(org) => format!("{} ({org})", r.entry.actor.id),
                None => r.entry.actor.id.clone(),
            },
            action: r.entry.action.clone(),
            detail: r.entry.detail.clone().unwrap_or_default(),
        })
        .collect();
    Ok(page::html(
        StatusCode::OK,
        &AlertsPage {
            layout: Layout::signed_in(&user, "Alerts", "/admin/alerts").wide(),
            alerts,
            limit: LIMIT,
        },
    ))
}
