//! HTML form posts. Every form a signed-in user sends carries the session's CSRF token in a
//! hidden `csrf_token` field; [`SignedInForm`] checks it (with the same rule as the API's
//! `X-CSRF-Token` header: `cpis_api::auth::require_csrf`) before the handler runs. Forms are
//! `application/x-www-form-urlencoded`; values are read from the body only, never the query.

use super::signed_in::SignedIn;
use crate::error::WebError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cpis_api::auth;
use cpis_api::ApiError;
use cpis_api::AppState;
use serde::de::DeserializeOwned;

/// Largest form body accepted (these forms are a few short fields).
const FORM_LIMIT: usize = 16 * 1024;

/// A form posted by a signed-in user, its CSRF token checked.
pub struct SignedInForm<T> {
    pub user: SignedIn,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for SignedInForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        refuse_cross_site(&parts).map_err(|e| WebError(e).into_response())?;
        let user = SignedIn::from_request_parts(&mut parts, state).await?;
        let bytes = read_body(body)
            .await
            .map_err(|e| WebError(e).into_response())?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| WebError(unreadable()).into_response())?;
        let sent = fields
            .iter()
            .find(|(k, _)| k == "csrf_token")
            .map_or("", |(_, v)| v.as_str());
        auth::require_csrf(
            state,
            &user.principal,
            &parts,
            Some(user.trace_id.clone()),
            sent,
            &user.csrf,
        )
        .await
        .map_err(|e| WebError(e).into_response())?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| WebError(unreadable()).into_response())?;
        Ok(SignedInForm { user, form })
    }
}

/// A form posted by someone not signed in (the sign-in form itself).
pub struct PublicForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PublicForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        refuse_cross_site(&parts)?;
        let bytes = read_body(body).await?;
        serde_urlencoded::from_bytes(&bytes)
            .map(PublicForm)
            .map_err(|_| WebError(unreadable()))
    }
}

fn unreadable() -> ApiError {
    ApiError::BadRequest("The form could not be read. Go back and try again.".into())
}

async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: FORM_LIMIT as u64,
        })
}

/// Browsers say where a request comes from (`Sec-Fetch-Site`); a form posted from another site
/// is refused outright (login CSRF, on top of the SameSite=Strict cookie and the token).
pub(super) fn refuse_cross_site(parts: &Parts) -> Result<(), ApiError> {
    match parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
    {
        Some("cross-site" | "same-site") => Err(ApiError::Forbidden(
            "forms can only be sent from this service's own pages".into(),
        )),
        _ => Ok(()),
    }
}
