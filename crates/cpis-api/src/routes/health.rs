use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// Liveness: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics (no personal data: counts and latencies). OpenMetrics text, or the
/// Prometheus text format 0.0.4 when the `Accept` header prefers `text/plain`. The outbox
/// gauges are read from the database at each scrape (kept at their last values if it fails).
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use crate::metrics::{prometheus_text, wants_prometheus_text, OPENMETRICS, PROMETHEUS_TEXT};
    use axum::response::IntoResponse;
    let store = state.store.clone();
    if let Ok(Ok((n, outboxes))) = tokio::task::spawn_blocking(move || {
        Ok::<_, cpis_store::StoreError>((
            store.unacknowledged_notifications()?,
            store.outbox_stats()?,
        ))
    })
    .await
    {
        state.metrics.outbox_unacknowledged.set(n);
        state.metrics.set_outboxes(&outboxes, state.clock.now());
    }
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let body = state.metrics.render();
    let (content_type, body) = if wants_prometheus_text(accept) {
        (PROMETHEUS_TEXT, prometheus_text(&body))
    } else {
        (OPENMETRICS, body)
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::VARY, "Accept"),
        ],
        body,
    )
        .into_response()
}

/// Readiness: the database answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.store.clone();
    let backend = store.backend();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": backend})),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "database": backend})),
        ),
    }
}
