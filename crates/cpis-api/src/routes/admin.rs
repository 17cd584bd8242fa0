//! Admin operations over HTTP: `POST /api/v1/admin/demographics/changes` (a change feed, CSV) and
//! `POST /api/v1/admin/purge?dry_run=true|false` (retention).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use cpis_auth::Principal;
use serde::Deserialize;
use serde_json::Value;

/// A change feed larger than this is sent with `cpis demographics apply-changes`.
const MAX_CHANGES_BYTES: usize = 64 * 1024 * 1024;

pub async fn demographics_changes(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "demographics.apply-changes", Principal::admin)
        .await?;
    if body.len() > MAX_CHANGES_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_CHANGES_BYTES as u64,
        });
    }
    let entries = cpis_core::loaders::parse_demographics(&body[..])
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = state.store.clone();
    let clock = state.clock.clone();
    let policy = *state.lookups.policy();
    let report = tokio::task::spawn_blocking(move || {
        cpis_core::lifecycle::apply_demographic_changes(
            store.as_ref(),
            clock.as_ref(),
            &policy,
            &cap,
            &entries,
        )
    })
    .await??;
    // The feed may have made inactive-nhs-number notifications: wake their consumers.
    state.lookups.commits().publish();
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize)]
pub struct PurgeParams {
    dry_run: Option<bool>,
}

pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<PurgeParams>,
) -> Result<Json<Value>, ApiError> {
    let cap = caller
        .grant(&state, "retention.purge", Principal::admin)
        .await?;
    let store = state.store.clone();
    let clock = state.clock.clone();
    let policy = *state.lookups.policy();
    let dry_run = p.dry_run.unwrap_or(true);
    let report = tokio::task::spawn_blocking(move || {
        cpis_core::lifecycle::purge(store.as_ref(), clock.as_ref(), &policy, &cap, dry_run)
    })
    .await??;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// Webhook deliveries given up on after the retry period.
pub async fn dead_deliveries(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller
        .grant(&state, "admin.deliveries", Principal::admin)
        .await?;
    let store = state.store.clone();
    let dead = tokio::task::spawn_blocking(move || store.dead_deliveries(500)).await??;
    Ok(Json(serde_json::json!({ "dead_deliveries": dead })))
}
