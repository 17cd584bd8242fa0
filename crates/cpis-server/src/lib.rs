//! The cpis HTTP server. Routes are thin: they authenticate, call `cpis-core` on a blocking
//! thread and render; every failure becomes an [`ApiError`], mapped to HTTP in one place.

mod auth;
mod error;
mod extract;
mod fhir;
mod lookup_flow;
mod metrics;
mod progress;
mod routes;
mod state;
mod web;

pub use auth::{Caller, SESSION_COOKIE};
pub use error::ApiError;
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
