//! The web UI (docs/WEB.md): server-rendered pages styled with the NHS.UK frontend, working
//! without JavaScript. Handlers here only parse forms, call `cpis-core` (through the same
//! services as the APIs) and render escaped askama templates from `crates/cpis-server/templates/`.
//! Errors go through the one error policy (`crate::error::WebError` renders them as pages).

mod admin_alerts;
mod admin_directory;
mod admin_users;
mod assets;
mod audit_search;
mod clinician;
mod data_quality;
mod format;
mod forms;
mod home;
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

use crate::state::AppState;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;

pub use page::error_page;
pub use sign_in_oidc::OidcWeb;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/sign-in/oidc", get(sign_in_oidc::start))
        .route("/sign-in/oidc/callback", get(sign_in_oidc::callback))
        .route("/lookup", get(clinician::form).post(clinician::submit))
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
        .route("/la/records", get(la_records::records))
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
}

/// Whether an unmatched request is a browser asking for a page (an HTML 404 then), rather than
/// an API client (the API's JSON 404).
pub fn wants_html(headers: &HeaderMap, path: &str) -> bool {
    let api = ["/api/", "/fhir/", "/auth/"]
        .iter()
        .any(|p| path.starts_with(p));
    !api && headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
