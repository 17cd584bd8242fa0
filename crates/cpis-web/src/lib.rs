//! The web UI of cpis (docs/WEB.md): server-rendered pages styled with the NHS.UK frontend,
//! working without JavaScript. Handlers here only parse forms, call `cpis-core` (through the same
//! services as the APIs, with the request plumbing of `cpis-api`: state, sign-in, capabilities)
//! and render escaped askama templates from `crates/cpis-web/templates/`. Errors are the one
//! [`cpis_api::ApiError`], rendered as pages by [`error::WebError`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

mod admin_alerts;
mod admin_directory;
mod admin_users;
mod assets;
mod audit_search;
mod clinician;
mod data_quality;
pub mod error;
mod format;
mod forms;
mod home;
mod la_history;
mod la_inbox;
mod la_pagination;
mod la_records;
mod la_report;
mod la_upload;
mod la_upload_form;
mod page;
mod sign_in;
mod sign_in_oidc;
mod signed_in;
mod was_not_brought;

use axum::routing::{get, post};
use axum::Router;
use cpis_api::AppState;
use std::sync::Arc;

pub use error::WebError;
pub use sign_in_oidc::OidcWeb;

/// The pages. `sign_in` is browser sign-in through the identity provider, when one is
/// configured (`/sign-in/oidc`).
pub fn router(sign_in: Option<Arc<OidcWeb>>) -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/sign-in/oidc", get(sign_in_oidc::start))
        .route("/sign-in/oidc/callback", get(sign_in_oidc::callback))
        .route("/lookup", get(clinician::form).post(clinician::submit))
        .route(
            "/was-not-brought",
            get(was_not_brought::form).post(was_not_brought::submit),
        )
        .route("/assets/{id}/{*name}", get(assets::serve))
        .route("/la/data-quality", get(data_quality::page))
        .route(
            "/la/uploads",
            get(la_upload::form)
                .post(la_upload::submit)
                // The file is spooled with the server's own upload limit (`max_upload_bytes`).
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/la/uploads/{id}", get(la_report::report))
        .route("/la/uploads/{id}/confirm", post(la_upload::confirm))
        .route("/la/notifications", get(la_inbox::inbox))
        .route("/la/notifications/rows", get(la_inbox::rows))
        .route("/la/notifications/ack", post(la_inbox::ack))
        .route("/la/notifications/assign", post(la_inbox::assign))
        .route("/la/records", get(la_records::records))
        .route("/la/records/{nhs}/history", get(la_history::page))
        .route("/la/records/{nhs}/history.csv", get(la_history::csv))
        .route("/admin/directory", get(admin_directory::page))
        .route(
            "/admin/users",
            get(admin_users::page).post(admin_users::search),
        )
        .route("/admin/users/disable", post(admin_users::disable))
        .route("/admin/users/enable", post(admin_users::enable))
        .route("/admin/alerts", get(admin_alerts::page))
        .route("/audit", get(audit_search::form).post(audit_search::search))
        .route("/audit/verify", post(audit_search::verify))
        .layer(axum::Extension(sign_in))
}
