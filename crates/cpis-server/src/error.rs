//! The one error policy of the HTTP API: every failure is an [`ApiError`], and this file alone
//! decides its status code and body: RFC 9457 problem details (`application/problem+json`:
//! `type`, `title`, `status`, `detail`, `instance`, plus cpis's `error` code, `message` and
//! `trace_id`) on the JSON API, an OperationOutcome on FHIR, an HTML page on the web. Bodies never
//! carry internal details; those go to the log (without personal data).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_core::upload::EngineError;
use cpis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: send 'Authorization: Bearer <token>'")]
    Unauthenticated,
    /// A password sign-in failed (wrong username or password, or a locked or disabled account:
    /// one message for all).
    #[error(
        "sign-in failed: the username or password is not right, or this account cannot sign in now"
    )]
    SignInFailed,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    BadRequest(String),
    /// The search data itself is wrong (an NHS number that fails its check, a wrong identifier
    /// system): FHIR's `INVALID_SEARCH_DATA`.
    #[error("{0}")]
    InvalidSearch(String),
    /// No representation the client accepts can be produced (FHIR XML).
    #[error("{0}")]
    NotAcceptable(String),
    /// The body's media type or content coding cannot be read; the message says what to send.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the {limit} byte limit")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests: lookups from this account are paused until {until}")]
    Throttled {
        /// RFC 3339.
        until: String,
        /// Seconds until then, for `Retry-After`.
        retry_after: u64,
    },
    /// Too many failed authentications from this client or with this credential.
    #[error("too many failed authentications: try again later")]
    AuthThrottled { retry_after: u64 },
    #[error("service temporarily unavailable; try again")]
    Unavailable,
    /// Anything else. The source error is kept (its whole chain goes to the log, never to the
    /// client).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::SignInFailed => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) | ApiError::InvalidSearch(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Throttled { .. } | ApiError::AuthThrottled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::SignInFailed => "sign_in_failed",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadRequest(_) | ApiError::InvalidSearch(_) => "bad_request",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Conflict(_) => "conflict",
            ApiError::Throttled { .. } | ApiError::AuthThrottled { .. } => "throttled",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// An [`ApiError::Internal`] keeping `e` (and its sources) for the log.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// Logs an internal error with its whole source chain (`a: b: c`). The chain is made of
    /// cpis's own error texts and the store's, which carry no personal data.
    fn log_internal(&self) {
        if let ApiError::Internal(e) = self {
            tracing::error!(error = %format_args!("{e:#}"), "internal error");
        }
    }

    /// 429 until `until` (as seen at `now`).
    pub fn throttled(
        until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        ApiError::Throttled {
            until: until.to_rfc3339(),
            retry_after: (until - now).num_seconds().max(1).unsigned_abs(),
        }
    }

    /// The `Retry-After` seconds this error asks for, if any.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Throttled { retry_after, .. } | ApiError::AuthThrottled { retry_after } => {
                Some(*retry_after)
            }
            ApiError::Unavailable => Some(5),
            _ => None,
        }
    }

    fn set_retry_after(&self, headers: &mut axum::http::HeaderMap) {
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable,
            other => ApiError::internal(other),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::NotFound => ApiError::NotFound,
            EngineError::NotHeld | EngineError::Stale => ApiError::Conflict(e.to_string()),
            EngineError::UnknownLocalAuthority => ApiError::Forbidden(e.to_string()),
            EngineError::Store(_) | EngineError::Io(_) => match e {
                EngineError::Store(s) => s.into(),
                other => ApiError::internal(other),
            },
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(e)
    }
}

/// The same errors, rendered for the FHIR API as an `OperationOutcome`.
#[derive(Debug)]
pub struct FhirError(pub ApiError);

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError(e)
    }
}

/// `?` in FHIR handlers: every error that becomes an [`ApiError`] becomes a [`FhirError`].
macro_rules! fhir_from {
    ($($t:ty),*) => {$(
        impl From<$t> for FhirError {
            fn from(e: $t) -> Self {
                FhirError(e.into())
            }
        }
    )*};
}
fhir_from!(
    StoreError,
    tokio::task::JoinError,
    cpis_core::lookup::LookupError
);

impl From<cpis_core::lookup::LookupError> for ApiError {
    fn from(e: cpis_core::lookup::LookupError) -> Self {
        match e {
            cpis_core::lookup::LookupError::Unavailable => ApiError::Unavailable,
            cpis_core::lookup::LookupError::Store(s) => s.into(),
        }
    }
}

/// The code system NHS England's FHIR APIs put in `OperationOutcome.issue.details` (SPEC 3.1).
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode";
/// The same codes under the system the CP-IS guide's worked example uses; both codings are sent
/// so a consumer built to either finds its code (docs/FHIR.md).
pub const ENGLAND_SPINE_ERROR_SYSTEM: &str =
    "https://fhir.nhs.uk/CodeSystem/England-SpineErrorOrWarningCode";

impl ApiError {
    /// The FHIR `IssueType` for this error.
    fn fhir_issue_code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated | ApiError::SignInFailed => "login",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed | ApiError::NotAcceptable(_) => "not-supported",
            ApiError::BadRequest(_)
            | ApiError::InvalidSearch(_)
            | ApiError::UnsupportedMediaType(_) => "invalid",
            ApiError::PayloadTooLarge { .. } => "too-costly",
            ApiError::Conflict(_) => "conflict",
            ApiError::Throttled { .. } | ApiError::AuthThrottled { .. } => "throttled",
            ApiError::Unavailable => "transient",
            ApiError::Internal(_) => "exception",
        }
    }

    /// The Spine error code and its display (UK Core SpineErrorOrWarningCode), as the CP-IS
    /// guide's error table maps them; statuses the table does not name use the nearest code of
    /// the same list (docs/FHIR.md).
    fn spine_code(&self) -> (&'static str, &'static str) {
        const ACCESS_DENIED: (&str, &str) = (
            "ACCESS_DENIED",
            "Access has been denied to process this request",
        );
        match self {
            ApiError::InvalidSearch(_) => ("INVALID_SEARCH_DATA", "Invalid search data"),
            ApiError::BadRequest(_) => ("PRECONDITION_FAILED", "Precondition failed"),
            ApiError::Unauthenticated
            | ApiError::SignInFailed
            | ApiError::Forbidden(_)
            | ApiError::Throttled { .. }
            | ApiError::AuthThrottled { .. } => ACCESS_DENIED,
            ApiError::NotFound => ("RESOURCE_NOT_FOUND", "Resource not found"),
            ApiError::MethodNotAllowed => ("UNSUPPORTED_SERVICE", "Unsupported service"),
            ApiError::NotAcceptable(_) | ApiError::UnsupportedMediaType(_) => {
                ("UNSUPPORTED_VALUE", "Unsupported value")
            }
            ApiError::PayloadTooLarge { .. } => ("INVALID_VALUE", "Invalid value"),
            ApiError::Conflict(_) => ("INVALID_UPDATE", "Invalid update"),
            ApiError::Unavailable => ("UNABLE_TO_CALL_SERVICE", "Unable to call service"),
            ApiError::Internal(_) => ("FAILURE_TO_PROCESS_MESSAGE", "Failure to process message"),
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = err.status();
        err.log_internal();
        let (code, display) = err.spine_code();
        let body = serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": err.fhir_issue_code(),
                "details": {
                    "coding": [
                        {"system": SPINE_ERROR_SYSTEM, "code": code, "display": display},
                        {"system": ENGLAND_SPINE_ERROR_SYSTEM, "code": code, "display": display}
                    ]
                },
                "diagnostics": err.to_string(),
            }]
        });
        let mut resp = (status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(crate::fhir::FHIR_JSON),
        );
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        err.set_retry_after(h);
        resp
    }
}

/// The media type of API errors (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log_internal();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "error": self.code(),
            "message": self.to_string(),
        });
        let mut resp = (status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(PROBLEM_JSON),
        );
        if status == StatusCode::UNAUTHORIZED && !matches!(self, ApiError::SignInFailed) {
            h.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        self.set_retry_after(h);
        resp
    }
}

/// Completes problem details on the way out: `instance` (the request's path, never its query,
/// which may carry an NHS number) and the request's `trace_id`, which the error itself does not
/// know. A 405 gets a problem body too (axum's own has none), keeping its `Allow`.
pub async fn complete_problems(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let trace = crate::auth::trace_id_of(req.headers());
    let resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let api = path.starts_with("/api/") || path.starts_with("/auth/");
    let bare_405 = api
        && status == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::CONTENT_TYPE);
    if !is_problem && !bare_405 {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let mut problem: serde_json::Value = if bare_405 {
        let e = ApiError::MethodNotAllowed;
        serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": e.to_string(),
            "error": e.code(),
            "message": e.to_string(),
        })
    } else {
        let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
            return (parts.status, parts.headers).into_response();
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
        }
    };
    if let Some(obj) = problem.as_object_mut() {
        obj.insert("instance".into(), path.into());
        if let Some(t) = trace {
            obj.insert("trace_id".into(), t.into());
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROBLEM_JSON),
    );
    Response::from_parts(parts, axum::body::Body::from(problem.to_string()))
}

/// The same errors, rendered for web pages as an HTML page with the NHS.UK layout. The status code
/// is the API's; the words are for people. (A missing session never gets here: pages send the
/// browser to the sign-in page instead, see `web::signed_in`.)
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

impl ApiError {
    /// Heading, message and an optional hint for an HTML error page.
    fn web_words(&self) -> (&'static str, String, Option<String>) {
        match self {
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
                self.to_string(),
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
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status = err.status();
        err.log_internal();
        let (heading, message, hint) = err.web_words();
        let mut resp = crate::web::error_page(status, heading, &message, hint);
        err.set_retry_after(resp.headers_mut());
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_internal_error_keeps_its_source_chain_and_tells_the_client_nothing() {
        let e = ApiError::from(StoreError::Backend("the disk is on fire".into()));
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("database error: the disk is on fire")
        );
        let ApiError::Internal(inner) = &e else {
            panic!("not internal: {e:?}");
        };
        assert!(format!("{inner:#}").contains("the disk is on fire"));
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("internal error"), "{body}");
        assert!(!body.contains("disk"), "{body}");
    }
}
