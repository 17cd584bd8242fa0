mod admin;
mod audit;
mod health;
mod notifications;
pub mod oauth;
mod session;
mod uploads;

pub use notifications::FilterParams;

use crate::state::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::time::Instant;
use tower_http::set_header::SetResponseHeaderLayer;

/// The JSON API's and the FHIR API's routes (the web pages are `cpis-web`'s).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/v1/admin/demographics/changes",
            post(admin::demographics_changes),
        )
        .route("/api/v1/admin/purge", post(admin::purge))
        .route("/api/v1/uploads", post(uploads::create))
        .route("/api/v1/uploads/{id}", get(uploads::report))
        .route("/api/v1/uploads/{id}/confirm", post(uploads::confirm))
        .route("/api/v1/notifications", get(notifications::list))
        .route("/api/v1/notifications/stream", get(notifications::stream))
        .route("/api/v1/admin/deliveries/dead", get(admin::dead_deliveries))
        .route("/api/v1/notifications/ack", post(notifications::bulk_ack))
        .route("/api/v1/notifications/{id}/ack", post(notifications::ack))
        .route(
            "/api/v1/notifications/{id}/assign",
            post(notifications::assign),
        )
        .route("/oauth2/token", post(oauth::token))
        .route("/auth/login", post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/auth/session", get(session::current))
        .route("/api/v1/audit", get(audit::search))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/admin/alerts", get(audit::alerts))
        .route("/api/v1/admin/users", get(audit::users))
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
        .merge(crate::fhir::router())
}

/// The middleware every response passes through, whichever surface made it: the request's trace
/// id, access log and metrics, problem details completed, and the security headers.
pub fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    router
        .layer(middleware::from_fn(crate::error::complete_problems))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
        .with_state(state)
}

/// One log line per request with the route template, never the concrete path or query: paths
/// and queries can carry identifiers that must stay out of ordinary logs.
///
/// Every request has a trace id: the caller's `TraceID` when it sent a usable one, else a new
/// UUID, set on the request before anything else sees it — so the log line, the audit entries
/// and the `TraceID` the FHIR API echoes all carry the same id. Events logged while the request
/// is handled (in its task) are inside a `request` span carrying that `trace_id`.
///
/// It also counts the request in the metrics, by route template and status, with its latency.
async fn access_log(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    let sent = req
        .headers()
        .get("traceid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable_trace_id(v))
        .map(str::to_owned);
    let trace_id = match sent {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            if let Ok(v) = HeaderValue::from_str(&id) {
                req.headers_mut().insert("traceid", v);
            }
            id
        }
    };
    let started = Instant::now();
    // Whatever the handler logs carries the trace id too (the span's field).
    let span = tracing::info_span!("request", trace_id = %trace_id);
    let resp = tracing::Instrument::instrument(next.run(req), span).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = resp.status().as_u16();
    state
        .metrics
        .observe_request(method.as_str(), &route, status, seconds);
    tracing::info!(
        %method,
        route,
        status,
        trace_id,
        ms = seconds * 1000.0,
        "request"
    );
    resp
}

/// A `TraceID` cpis takes from a caller: 1–128 visible ASCII characters.
pub(crate) fn usable_trace_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}
