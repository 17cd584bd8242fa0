//! The cpis HTTP server. Routes are thin: they authenticate, call `cpis-core` on a blocking
//! thread and render; every failure becomes an [`ApiError`], mapped to HTTP in one place.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

mod auth;
mod error;
mod extract;
mod fhir;
mod lookup_flow;
mod metrics;
pub mod openapi;
mod progress;
mod refusals;
mod routes;
pub mod startup;
mod state;
mod uploads;
mod web;

pub use auth::{Caller, SESSION_COOKIE};
pub use error::ApiError;
pub use startup::{Application, Settings};
pub use state::{AppState, ServerConfig};

use axum::Router;
use std::future::Future;
use tokio::net::TcpListener;

/// The whole application as a router (tests drive it without a socket).
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    spawn_housekeeping(&state);
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Background upkeep of a serving process: writes the audit entries of failed authentications
/// that were counted rather than written one by one, every five seconds.
pub fn spawn_housekeeping(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
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
        }
    });
}
