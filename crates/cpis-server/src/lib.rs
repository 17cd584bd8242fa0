//! The cpis server's composition root. [`startup::Application::build`] wires the store, the
//! lookup writer, the delivery and MESH workers and the notification bus into one application;
//! [`router`] assembles the APIs (`cpis-api`) and the web pages (`cpis-web`) under one set of
//! middleware, with one answer for unknown paths. `cpis serve` and every server test use it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod startup;

pub use cpis_api::{ApiError, AppState, Caller, ServerConfig, SESSION_COOKIE};
pub use startup::{Application, Settings};

use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use cpis_web::{OidcWeb, WebError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The whole application as a router (tests drive it without a socket): the API and FHIR
/// routes, the web pages (with browser sign-in through the identity provider when `sign_in` is
/// set), and the request middleware around all of them.
pub fn router(state: AppState, sign_in: Option<Arc<OidcWeb>>) -> Router {
    let routes = cpis_api::routes()
        .merge(cpis_web::router(sign_in))
        .fallback(not_found);
    cpis_api::with_layers(routes, state)
}

/// Unknown paths: the API's JSON 404, or an HTML page for a browser asking for a page.
async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    if wants_html(&headers, uri.path()) {
        WebError(ApiError::NotFound).into_response()
    } else {
        ApiError::NotFound.into_response()
    }
}

/// Whether an unmatched request is a browser asking for a page (an HTML 404 then), rather than
/// an API client (the API's JSON 404).
fn wants_html(headers: &HeaderMap, path: &str) -> bool {
    let api = ["/api/", "/fhir/", "/auth/"]
        .iter()
        .any(|p| path.starts_with(p));
    !api && headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Serves `router` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    spawn_housekeeping(&state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Background upkeep of a serving process, every five seconds: writes the audit entries of
/// failed authentications that were counted rather than written one by one, and escalates work
/// queue items left unacknowledged past the deadline (by the service clock; safe with several
/// servers on one database); sends birth reminders ([`birth_reminders`]) at start, whenever the
/// service clock's date changes, and hourly.
pub fn spawn_housekeeping(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        // The service clock's date of the last birth-reminder run, and when it ran.
        let mut reminded_on = None;
        let mut reminded_at = std::time::Instant::now();
        loop {
            every.tick().await;
            let s = state.clone();
            // A failure to write an entry is logged where it happens; a task that did not
            // finish (a panic) is logged here, never dropped.
            if let Err(e) =
                tokio::task::spawn_blocking(move || s.write_counted_auth_failures()).await
            {
                tracing::error!(error = %e, "could not write counted authentication failures to the audit");
            }
            let s = state.clone();
            match tokio::task::spawn_blocking(move || escalate(&s)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(escalated = n, "overdue notifications escalated"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "could not escalate overdue notifications")
                }
                Err(e) => tracing::error!(error = %e, "the escalation task did not finish"),
            }
            let today = state.clock.today();
            if reminded_on != Some(today)
                || reminded_at.elapsed() >= std::time::Duration::from_secs(3600)
            {
                let s = state.clone();
                match tokio::task::spawn_blocking(move || birth_reminders(&s)).await {
                    Ok(Ok(_)) => {
                        reminded_on = Some(today);
                        reminded_at = std::time::Instant::now();
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "birth reminders failed; retrying"),
                    Err(e) => tracing::error!(error = %e, "birth reminders did not finish"),
                }
            }
        }
    });
}

/// One birth-reminder run with the service clock: a `birth-reminder` notification for each
/// unborn child protection plan `birth_reminder_days` past its expected delivery date with no
/// plan for the baby (docs/WORKFLOW.md). Safe on several servers at once: each plan is reminded
/// once. Wakes the notification streams when it sent any. Blocks.
pub fn birth_reminders(state: &AppState) -> Result<usize, cpis_store::StoreError> {
    let sent = cpis_core::lifecycle::send_birth_reminders(
        state.store.as_ref(),
        state.clock.as_ref(),
        state.lookups.policy(),
        state.config.birth_reminder_days,
    )?;
    if sent > 0 {
        state.lookups.commits().publish();
    }
    Ok(sent)
}

/// One escalation run: every notification overdue by the service clock raises its one
/// escalation notification. Tests call it after moving the clock.
pub fn escalate(state: &AppState) -> cpis_store::StoreResult<usize> {
    let n = cpis_core::escalation::escalate_overdue(
        state.store.as_ref(),
        state.clock.now(),
        state.config.work_queue.deadline(),
        state.config.work_queue.repeat_window(),
    )?;
    if n > 0 {
        // Wakes this server's event streams at once.
        state.lookups.commits().publish();
    }
    Ok(n)
}
