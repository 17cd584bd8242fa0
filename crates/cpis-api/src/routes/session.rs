//! Local accounts: `POST /auth/login`, `POST /auth/logout`, `GET /auth/session`.
//! The session cookie is `HttpOnly; Secure; SameSite=Strict`; unsafe requests made with it must
//! carry the session's CSRF token in `X-CSRF-Token`.

use crate::auth::{cookie, new_session_cookie, session_cookie, Caller, SESSION_COOKIE};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

fn who(caller_principal: &cpis_auth::Principal) -> serde_json::Value {
    json!({
        "user_id": caller_principal.user_id(),
        "name": caller_principal.display_name(),
        "role": caller_principal.role(),
        "organisation": caller_principal.organisation(),
        "organisation_name": caller_principal.organisation_name(),
        "permissions": caller_principal.permissions().to_string(),
    })
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Parsed by hand so a malformed body gets the API's JSON error, without echoing any of it.
    let body: Login = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(
            "the body must be JSON: {\"username\": \"…\", \"password\": \"…\"}".into(),
        )
    })?;
    if body.username.len() > 128 || body.password.len() > 1024 {
        return Err(ApiError::SignInFailed);
    }
    let trace = crate::auth::trace_id_of(&headers);
    let auth = state.auth.clone();
    let (principal, session) = tokio::task::spawn_blocking(move || {
        auth.login(&body.username, &body.password, trace.as_deref())
    })
    .await?
    .map_err(|f| match f {
        cpis_auth::AuthFailure::Unavailable => ApiError::Unavailable,
        _ => ApiError::SignInFailed,
    })?;
    let mut resp = (
        StatusCode::OK,
        Json(json!({
            "user": who(&principal),
            "csrf_token": session.csrf_token,
            "expires_at": session.expires_at,
        })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, new_session_cookie(&state, &session));
    Ok(resp)
}

pub async fn logout(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = req.into_parts();
    // Requires a valid session and its CSRF token, like any other unsafe request.
    let _caller = Caller::from_request_parts(&mut parts, &state).await?;
    if let Some(value) = cookie(&parts, SESSION_COOKIE).map(str::to_owned) {
        let auth = state.auth.clone();
        tokio::task::spawn_blocking(move || auth.logout(&value)).await??;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(resp)
}

pub async fn current(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "user": who(&caller.principal), "csrf_token": caller.csrf }))
}
