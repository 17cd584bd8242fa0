//! `GET /sign-in`, `POST /sign-in`, `POST /sign-out`: local accounts, with the same
//! authenticator, lockout, audit and session cookie as the JSON API (`routes/session.rs`).
//! A failed sign-in always says the same thing, whether or not the account exists.

use super::forms::{PublicForm, SignedInForm};
use super::page::{self, FieldError, Layout};
use super::sign_in_oidc::Idp;
use super::signed_in::{safe_return_path, SignedIn};
use crate::error::WebError;
use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cpis_api::auth::{cookie_in, SESSION_COOKIE};
use cpis_api::auth::{new_session_cookie, session_cookie};
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::AuthFailure;
use serde::Deserialize;

/// The one message for every failed sign-in (wrong password, unknown user, locked, disabled).
pub const SIGN_IN_FAILED: &str =
    "Enter a correct username and password. Accounts are locked for a while after repeated failures.";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    errors: Vec<FieldError>,
    username: String,
    return_to: String,
    signed_out: bool,
    /// The identity provider's button text, when one is configured.
    oidc_label: Option<String>,
}

impl SignInPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    signed_out: Option<String>,
}

pub async fn form(
    State(state): State<AppState>,
    Extension(idp): Extension<Idp>,
    req: axum::extract::Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    // Already signed in: straight to the home page.
    if let Ok(user) = SignedIn::from_request_parts(&mut parts, &state).await {
        return page::see_other(page::home_of(&user.principal));
    }
    let query = Query::<SignInQuery>::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    page::html(
        StatusCode::OK,
        &SignInPage {
            layout: Layout::signed_out("Sign in"),
            errors: Vec::new(),
            username: String::new(),
            return_to: safe_return_path(&query.return_to).unwrap_or("").to_owned(),
            signed_out: query.signed_out.is_some(),
            oidc_label: oidc_label(&idp),
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
}

pub async fn submit(
    State(state): State<AppState>,
    Extension(idp): Extension<Idp>,
    PublicForm(form): PublicForm<SignInForm>,
) -> Result<Response, WebError> {
    let return_to = safe_return_path(&form.return_to).unwrap_or("").to_owned();
    let username = form.username.trim().to_owned();
    let mut errors = Vec::new();
    if username.is_empty() {
        errors.push(FieldError {
            field: "username",
            message: "Enter your username".into(),
        });
    }
    if form.password.is_empty() {
        errors.push(FieldError {
            field: "password",
            message: "Enter your password".into(),
        });
    }
    if errors.is_empty() {
        if username.len() > 128 || form.password.len() > 1024 {
            errors.push(failed());
        } else {
            let auth = state.auth.clone();
            let (name, password) = (username.clone(), form.password);
            let outcome =
                tokio::task::spawn_blocking(move || auth.login(&name, &password, None)).await?;
            match outcome {
                Ok((principal, session)) => {
                    let target = if return_to.is_empty() {
                        page::home_of(&principal).to_owned()
                    } else {
                        return_to
                    };
                    let mut resp = page::see_other(&target);
                    resp.headers_mut()
                        .insert(header::SET_COOKIE, new_session_cookie(&state, &session));
                    return Ok(resp);
                }
                Err(AuthFailure::Unavailable) => return Err(ApiError::Unavailable.into()),
                Err(_) => errors.push(failed()),
            }
        }
    }
    let status = if errors.iter().any(|e| e.message == SIGN_IN_FAILED) {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(page::html(
        status,
        &SignInPage {
            layout: Layout::signed_out("Sign in").with_errors(true),
            errors,
            username,
            return_to,
            signed_out: false,
            oidc_label: oidc_label(&idp),
        },
    ))
}

fn oidc_label(idp: &Idp) -> Option<String> {
    idp.as_ref().map(|o| o.label().to_owned())
}

/// The one message for every failed sign-in through the identity provider.
pub const OIDC_SIGN_IN_FAILED: &str =
    "Sign-in with your identity provider did not complete. Try again, or contact your service desk.";

/// The sign-in page (401) with [`OIDC_SIGN_IN_FAILED`] against the identity provider's button.
pub(super) fn oidc_failed_page(idp: &Idp) -> Response {
    page::html(
        StatusCode::UNAUTHORIZED,
        &SignInPage {
            layout: Layout::signed_out("Sign in").with_errors(true),
            errors: vec![FieldError {
                field: "oidc-sign-in",
                message: OIDC_SIGN_IN_FAILED.into(),
            }],
            username: String::new(),
            return_to: String::new(),
            signed_out: false,
            oidc_label: oidc_label(idp),
        },
    )
}

fn failed() -> FieldError {
    FieldError {
        field: "username",
        message: SIGN_IN_FAILED.into(),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {}

/// Ends the session (the form carries the CSRF token) and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    SignedInForm { .. }: SignedInForm<SignOutForm>,
) -> Result<Response, WebError> {
    if let Some(value) = cookie_in(&headers, SESSION_COOKIE).map(str::to_owned) {
        let auth = state.auth.clone();
        tokio::task::spawn_blocking(move || auth.logout(&value)).await??;
    }
    let mut resp = page::see_other("/sign-in?signed_out=1");
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(resp.into_response())
}
