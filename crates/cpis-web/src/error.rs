//! The web surface's rendering of the one error type: every [`ApiError`] a page handler returns
//! becomes an HTML page in the NHS.UK layout, with the API's status code and words for people.

use axum::response::{IntoResponse, Response};
use cpis_api::ApiError;
use cpis_store::StoreError;

/// The same errors, rendered for web pages as an HTML page with the NHS.UK layout. The status code
/// is the API's; the words are for people. (A missing session never gets here: pages send the
/// browser to the sign-in page instead, see `signed_in`.)
#[derive(Debug)]
pub struct WebError(pub ApiError);

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError(e)
    }
}

/// `?` in web handlers: every error that becomes an [`ApiError`] becomes a [`WebError`].
macro_rules! web_from {
    ($($t:ty),*) => {$(
        impl From<$t> for WebError {
            fn from(e: $t) -> Self {
                WebError(e.into())
            }
        }
    )*};
}
web_from!(
    StoreError,
    tokio::task::JoinError,
    cpis_core::lookup::LookupError,
    cpis_auth::AuthFailure
);

/// Heading, message and an optional hint for an HTML error page.
fn words(err: &ApiError) -> (&'static str, String, Option<String>) {
    match err {
        ApiError::Unauthenticated | ApiError::SignInFailed => ("You need to sign in", "Sign in to use this page.".into(), None),
        ApiError::Forbidden(why) => (
            "You cannot use this page",
            "Your account does not allow this.".into(),
            Some(format!("Reason: {why}.")),
        ),
        ApiError::NotFound => (
            "Page not found",
            "If you typed the web address, check it is correct.".into(),
            None,
        ),
        ApiError::MethodNotAllowed => ("Page not found", "This page cannot be used like that.".into(), None),
        ApiError::BadRequest(why) | ApiError::InvalidSearch(why) => {
            ("There is a problem with the request", why.clone(), None)
        }
        ApiError::NotAcceptable(why) => ("There is a problem with the request", why.clone(), None),
        ApiError::UnsupportedMediaType(_) | ApiError::PayloadTooLarge { .. } => (
            "There is a problem with the request",
            err.to_string(),
            None,
        ),
        ApiError::Conflict(why) => ("This cannot be done now", why.clone(), None),
        ApiError::Throttled { until, .. } => (
            "Lookups from your account are paused",
            format!("Your account has made more lookups than expected. You can look children up again after {until} (UTC)."),
            Some("If you need information about a child urgently, phone the local authority's children's social care or emergency duty team.".into()),
        ),
        ApiError::AuthThrottled { .. } => (
            "Too many failed sign-in attempts",
            "Wait a few minutes before you try again.".into(),
            Some("If you need information about a child urgently, phone the local authority's children's social care or emergency duty team.".into()),
        ),
        ApiError::Unavailable => (
            "Sorry, the service is unavailable",
            "Try again in a few minutes.".into(),
            None,
        ),
        ApiError::Internal(_) => (
            "Sorry, there is a problem with the service",
            "Try again later.".into(),
            None,
        ),
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = err.status();
        err.log_internal();
        let (heading, message, hint) = words(&err);
        let mut resp = crate::page::error_page(status, heading, &message, hint);
        err.set_retry_after(resp.headers_mut());
        resp
    }
}
