//! The one error policy of the HTTP API: every failure is an [`ApiError`], and this file alone
//! decides its status code and body: RFC 9457 problem details (`application/problem+json`:
//! `type`, `title`, `status`, `detail`, `instance`, plus cpis's `error` code, `message` and
//! `trace_id`) on the JSON API. The other surfaces render the same error their own way: an
//! OperationOutcome on FHIR (`fhir::error`), an HTML page on the web (`cpis_web::error`). Bodies
//! never carry internal details; those go to the log (without personal data).

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
    /// The HTTP status every surface answers this error with.
    pub fn status(&self) -> StatusCode {
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

    /// Logs an internal error with its whole source chain (`a: b: c`), which no response body
    /// carries; each surface's rendering calls it once. The chain is made of cpis's own error
    /// texts and the store's, which carry no personal data.
    pub fn log_internal(&self) {
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

    /// Sets `Retry-After` when the error says when to come back.
    pub fn set_retry_after(&self, headers: &mut axum::http::HeaderMap) {
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

impl From<cpis_core::lookup::LookupError> for ApiError {
    fn from(e: cpis_core::lookup::LookupError) -> Self {
        match e {
            cpis_core::lookup::LookupError::Unavailable => ApiError::Unavailable,
            cpis_core::lookup::LookupError::Store(s) => s.into(),
        }
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
