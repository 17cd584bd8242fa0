//! `GET /sign-in/oidc` and `GET /sign-in/oidc/callback`: signing in through the identity
//! provider (NHS CIS2 in production) with the OpenID Connect authorization-code flow, PKCE,
//! `state` and `nonce` (`cpis_auth::oidc` checks; this module moves the bytes).
//!
//! The pending sign-in lives in a ten-minute cookie scoped to `/sign-in/oidc` (`SameSite=Lax`: the
//! provider's redirect back is a cross-site top-level navigation). The callback exchanges the
//! code at the token endpoint, verifies the ID token, and starts an ordinary cpis session
//! (`Authenticator::login_oidc`). Every failure shows the sign-in page with one message and is
//! audited; the reason goes to the log and the audit, never to the page.

use super::page::{self, Layout};
use super::sign_in;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use cpis_api::auth::cookie_in;
use cpis_api::auth::new_session_cookie;
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::oidc::{Callback, OidcError, OidcSignIn, PendingSignIn, TokenRequest};
use cpis_auth::AuthFailure;
use std::sync::Arc;
use std::time::Duration;

const PENDING_COOKIE: &str = "cpis_oidc";
const PENDING_SECONDS: u32 = 600;
const TOKEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Token responses are small JSON documents; anything larger is not one.
const TOKEN_RESPONSE_LIMIT: u64 = 256 * 1024;

/// The identity provider as the web pages use it.
pub struct OidcWeb {
    sign_in: OidcSignIn,
    agent: ureq::Agent,
}

impl OidcWeb {
    pub fn new(sign_in: OidcSignIn) -> Self {
        OidcWeb {
            sign_in,
            agent: ureq::AgentBuilder::new()
                .timeout(TOKEN_TIMEOUT)
                .redirects(0)
                .build(),
        }
    }

    pub fn label(&self) -> &str {
        self.sign_in.label()
    }

    /// `POST`s the token request; the body of any answer (the provider explains refusals in
    /// JSON), or why there was none.
    fn exchange(&self, request: &TokenRequest) -> Result<String, OidcError> {
        let mut call = self
            .agent
            .post(&request.url)
            .set("Accept", "application/json");
        if let Some(authorization) = &request.authorization {
            call = call.set("Authorization", authorization);
        }
        let form: Vec<(&str, &str)> = request.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = match call.send_form(&form) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(OidcError::BadTokenResponse(format!(
                    "token endpoint unreachable: {}",
                    e.kind()
                )))
            }
        };
        let mut body = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(response.into_reader(), TOKEN_RESPONSE_LIMIT),
            &mut body,
        )
        .map_err(|e| OidcError::BadTokenResponse(format!("reading the answer: {e}")))?;
        Ok(body)
    }
}

fn pending_cookie(value: &str, max_age: u32) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{PENDING_COOKIE}={value}; Path=/sign-in/oidc; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("cpis_oidc=; Max-Age=0"))
}

/// The identity provider pages sign in with, when one is configured (a request extension set by
/// [`crate::router`]).
pub type Idp = Option<Arc<OidcWeb>>;

/// The provider, or 404 when none is configured.
fn configured(idp: &Idp) -> Result<Arc<OidcWeb>, WebError> {
    idp.clone().ok_or(WebError(ApiError::NotFound))
}

/// Sends the browser to the identity provider with a fresh state, nonce and PKCE challenge.
pub async fn start(Extension(idp): Extension<Idp>) -> Result<Response, WebError> {
    let oidc = configured(&idp)?;
    let (pending, url) = oidc.sign_in.begin();
    let mut resp = page::see_other(&url);
    resp.headers_mut().insert(
        header::SET_COOKIE,
        pending_cookie(&pending.cookie_value(), PENDING_SECONDS),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[derive(Template)]
#[template(path = "signed_in_oidc.html")]
struct SignedInPage {
    layout: Layout,
    next: &'static str,
}

/// Where the provider sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    Extension(idp): Extension<Idp>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Result<Response, WebError> {
    let oidc = configured(&idp)?;
    let pending = cookie_in(&headers, PENDING_COOKIE).map(PendingSignIn::from_cookie_value);
    let auth = state.auth.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let pending = pending.ok_or(OidcError::NoPendingSignIn)??;
        let request = oidc.sign_in.callback(&pending, &back)?;
        let body = oidc.exchange(&request)?;
        let identity = oidc.sign_in.finish(&pending, &body)?;
        Ok::<_, OidcError>(auth.login_oidc(&identity, None))
    })
    .await?;
    let clear_pending = pending_cookie("", 0);
    let failed = || {
        let mut resp = sign_in::oidc_failed_page(&idp);
        resp.headers_mut()
            .append(header::SET_COOKIE, clear_pending.clone());
        Ok(resp)
    };
    match outcome {
        Err(why) => {
            tracing::warn!(reason = %why, "identity provider sign-in refused");
            let auth = state.auth.clone();
            tokio::task::spawn_blocking(move || auth.refuse_oidc(&why, None)).await?;
            failed()
        }
        Ok(Err(AuthFailure::Unavailable)) => Err(ApiError::Unavailable.into()),
        // Refused by cpis (claims unusable, account disabled): audited by the authenticator.
        Ok(Err(_)) => failed(),
        Ok(Ok((principal, session))) => {
            // A page rather than a redirect: the browser arrived here from the provider's site,
            // and its next request must come from cpis's own page for the SameSite=Strict
            // session cookie to go with it.
            let next = page::home_of(&principal);
            let mut resp = page::html(
                StatusCode::OK,
                &SignedInPage {
                    layout: Layout::signed_out("Signed in"),
                    next,
                },
            );
            let headers = resp.headers_mut();
            headers.insert(header::SET_COOKIE, new_session_cookie(&state, &session));
            headers.append(header::SET_COOKIE, clear_pending);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(v) = HeaderValue::from_str(&format!("0; url={next}")) {
                headers.insert(header::REFRESH, v);
            }
            Ok(resp.into_response())
        }
    }
}
