//! The cpis HTTP APIs: the LA upload and notification API, NHS England's CP-IS FHIR API, OAuth
//! and health, and the request plumbing every surface (these APIs and `cpis-web`'s pages) shares:
//! the application state, authentication into capabilities, the one [`ApiError`] and the request
//! middleware. Routes are thin: they authenticate, call `cpis-core` on a blocking thread and
//! render. `cpis-server` assembles these routes and the web pages into one application.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod auth;
pub mod error;
pub mod extract;
mod fhir;
pub mod lookup_flow;
pub mod metrics;
pub mod openapi;
pub mod progress;
mod refusals;
pub mod routes;
mod state;
pub mod uploads;
pub mod was_not_brought_flow;

pub use auth::{Caller, SESSION_COOKIE};
pub use error::ApiError;
pub use state::{AppState, ServerConfig};

pub use routes::{routes, with_layers};
