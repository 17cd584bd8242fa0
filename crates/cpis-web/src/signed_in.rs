//! Who is using a page: the session behind the `cpis_session` cookie. Pages take a [`SignedIn`];
//! without a valid session the browser is sent to `/sign-in`, with the page to come back to.
//! Web pages accept only the session cookie (never bearer tokens): they are for people.

use crate::error::WebError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cpis_api::auth::{self, Caller};
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::Principal;

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    /// The session's CSRF token: rendered into every form as `csrf_token`.
    pub csrf: String,
    /// This request's trace id (the `TraceID` header, or a new one).
    pub trace_id: String,
}

impl SignedIn {
    /// The same user as an API [`Caller`], to ask for capabilities with `Caller::grant`
    /// (a refusal is audited).
    pub fn caller(&self) -> Caller {
        Caller {
            principal: self.principal.clone(),
            csrf: Some(self.csrf.clone()),
            trace_id: Some(self.trace_id.clone()),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match auth::session_of(parts, state).await {
            Ok(Some((principal, csrf))) => Ok(SignedIn {
                principal,
                csrf,
                trace_id: auth::trace_id(parts).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            }),
            Ok(None) | Err(ApiError::Unauthenticated) => Err(sign_in_redirect(parts.uri.path())),
            Err(e) => Err(WebError(e).into_response()),
        }
    }
}

/// `303 /sign-in?return_to=<path>` (the path only when it is a safe page path).
pub fn sign_in_redirect(path: &str) -> Response {
    match safe_return_path(path) {
        Some(p) if p != "/" => super::page::see_other(&format!("/sign-in?return_to={p}")),
        _ => super::page::see_other("/sign-in"),
    }
}

/// A path this site may send the browser back to after signing in: absolute (`/…`), on this site
/// (not `//host` or `/\host`), made only of letters, digits, `/`, `-` and `_` (so no query,
/// fragment, encoded characters or dots), at most 200 characters. Anything else is refused.
pub fn safe_return_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_".contains(&b))
        && !path.starts_with("/sign-");
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::safe_return_path;

    #[test]
    fn only_plain_paths_on_this_site_are_return_paths() {
        assert_eq!(safe_return_path("/lookup"), Some("/lookup"));
        assert_eq!(
            safe_return_path("/la/notifications"),
            Some("/la/notifications")
        );
        for bad in [
            "",
            "lookup",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/lookup?nhs_number=9990597634",
            "/%2F%2Fevil.example",
            "/../etc",
            "/sign-in",
            "/sign-out",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }
}
