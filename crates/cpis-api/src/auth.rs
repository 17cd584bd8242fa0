//! Authentication at the HTTP edge. A request carries `Authorization: Bearer <API token or JWT>`
//! or, on `/api/v1` only (never FHIR), a session cookie (with an `X-CSRF-Token` header on unsafe
//! methods); the
//! [`cpis_auth::Authenticator`] turns it into a [`Principal`]. Handlers then ask the principal for
//! the capability the operation needs; a refusal is audited and answered 403.

use crate::error::ApiError;
use crate::fhir::FhirError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use cpis_auth::{AuthFailure, Denied, Principal};
use cpis_domain::AuditEntry;

pub const SESSION_COOKIE: &str = "cpis_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The session's CSRF token, for callers authenticated by cookie.
    pub csrf: Option<String>,
    pub trace_id: Option<String>,
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Unavailable => ApiError::Unavailable,
            _ => ApiError::Unauthenticated,
        }
    }
}

/// The value of one cookie, if present once.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of one cookie in these headers, if present.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn trace_id(parts: &Parts) -> Option<String> {
    trace_id_of(&parts.headers)
}

/// A caller's `TraceID`, when usable (`routes::usable_trace_id`, the one rule).
pub fn trace_id_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("traceid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| crate::routes::usable_trace_id(v))
        .map(str::to_owned)
}

/// Which credentials a surface takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Credentials {
    /// A bearer token, or the web session cookie (with CSRF on unsafe methods): `/api/v1`.
    BearerOrSession,
    /// A bearer token only: the FHIR API. A cookie alone must never make a notifying lookup
    /// (a cross-site GET would carry it); the web UI has its own POST + CSRF lookup.
    BearerOnly,
}

async fn authenticate(
    parts: &Parts,
    state: &AppState,
    accepted: Credentials,
) -> Result<Caller, ApiError> {
    let trace = trace_id(parts);
    let auth = state.auth.clone();
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ApiError::Unauthenticated)?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthenticated)?;
        let token = token.trim().to_owned();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::Unauthenticated);
        }
        let principal = match auth.bearer_cached(&token) {
            Some(p) => p,
            None => {
                let t = trace.clone();
                let address = client_address(parts);
                let state = state.clone();
                tokio::task::spawn_blocking(move || bearer(&state, &token, &address, t.as_deref()))
                    .await??
            }
        };
        return Ok(Caller {
            principal,
            csrf: None,
            trace_id: trace,
        });
    }
    if accepted == Credentials::BearerOnly {
        return Err(ApiError::Unauthenticated);
    }
    let Some((principal, csrf)) = session_of(parts, state).await? else {
        return Err(ApiError::Unauthenticated);
    };
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        require_csrf(state, &principal, parts, trace.clone(), sent, &csrf).await?;
    }
    Ok(Caller {
        principal,
        csrf: Some(csrf),
        trace_id: trace,
    })
}

/// The client's address as the server saw it (a reverse proxy's, behind one).
pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// Checks a bearer credential. A failure is counted against the client's address and the
/// credential: audited one by one up to the window's allowance (then counted into one entry),
/// and answered 429 with `Retry-After` past the limits (`cpis_auth::failure_throttle`).
fn bearer(
    state: &AppState,
    token: &str,
    address: &str,
    trace: Option<&str>,
) -> Result<Principal, ApiError> {
    let why = match state.auth.verify_bearer(token) {
        Ok(p) => return Ok(p),
        Err(AuthFailure::Unavailable) => return Err(ApiError::Unavailable),
        Err(why) => why,
    };
    let key = cpis_auth::failure_throttle::credential_key(token);
    let verdict = state
        .auth_failures
        .failed(address, Some(&key), state.clock.now());
    if verdict.audit {
        state.auth.audit_bearer_failure(&why, address, trace);
    }
    state.write_counted_auth_failures();
    Err(match verdict.retry_after {
        Some(retry_after) => ApiError::AuthThrottled { retry_after },
        None => ApiError::Unauthenticated,
    })
}

/// The principal and CSRF token of the session named by the request's cookie; `None` without a
/// cookie. An unknown or expired session is `Unauthenticated`. Checks no CSRF token: callers do.
pub async fn session_of(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(Principal, String)>, ApiError> {
    let Some(session) = cookie(parts, SESSION_COOKIE).map(str::to_owned) else {
        return Ok(None);
    };
    let auth = state.auth.clone();
    Ok(Some(
        tokio::task::spawn_blocking(move || auth.session(&session)).await??,
    ))
}

/// The one CSRF rule for requests authenticated by the session cookie: the token `sent` (the
/// `X-CSRF-Token` header for the API, the `csrf_token` field of an HTML form) must equal the
/// session's, compared in constant time. A refusal is audited and answered 403.
pub async fn require_csrf(
    state: &AppState,
    principal: &Principal,
    parts: &Parts,
    trace: Option<String>,
    sent: &str,
    expected: &str,
) -> Result<(), ApiError> {
    if cpis_auth::secret::equal(sent, expected) {
        return Ok(());
    }
    let entry = AuditEntry::new(
        state.clock.now(),
        principal.audit_actor(),
        "auth.csrf",
        trace,
    )
    .denied()
    .detail(format!(
        "{} {} without a valid CSRF token",
        parts.method,
        route_of(parts)
    ));
    crate::refusals::audit(state, entry).await;
    Err(ApiError::Forbidden("missing or wrong CSRF token".into()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, Credentials::BearerOrSession).await
    }
}

/// The route template of a request (never its concrete path: paths may carry identifiers).
fn route_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned())
}

/// A caller on the FHIR API (errors as OperationOutcome): bearer credentials only.
#[derive(Debug, Clone)]
pub struct FhirCaller(pub Caller);

impl FromRequestParts<AppState> for FhirCaller {
    type Rejection = FhirError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(FhirCaller(
            authenticate(parts, state, Credentials::BearerOnly).await?,
        ))
    }
}

impl Caller {
    /// Asks the principal for a capability; a refusal is written to the audit and becomes 403.
    pub async fn grant<T>(
        &self,
        state: &AppState,
        action: &str,
        ask: impl FnOnce(&Principal) -> Result<T, Denied>,
    ) -> Result<T, ApiError> {
        match ask(&self.principal) {
            Ok(cap) => Ok(cap),
            Err(Denied(why)) => {
                let entry = AuditEntry::new(
                    state.clock.now(),
                    self.principal.audit_actor(),
                    action,
                    self.trace_id.clone(),
                )
                .denied()
                .detail(why.clone());
                crate::refusals::audit(state, entry).await;
                Err(ApiError::Forbidden(why))
            }
        }
    }
}

/// The session cookie (`HttpOnly; Secure; SameSite=Strict`): set by the API's `/auth/login`
/// and the web's sign-in pages, cleared (`Max-Age=0`) on sign-out.
pub fn session_cookie(value: &str, max_age: i64) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| axum::http::HeaderValue::from_static("cpis_session=; Max-Age=0"))
}

/// The cookie of a session just started, living as long as the session.
pub fn new_session_cookie(
    state: &crate::state::AppState,
    session: &cpis_auth::NewSession,
) -> axum::http::HeaderValue {
    let max_age = (session.expires_at - state.clock.now())
        .num_seconds()
        .max(0);
    session_cookie(&session.cookie_value, max_age)
}
