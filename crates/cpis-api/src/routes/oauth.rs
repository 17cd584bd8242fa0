//! `POST /oauth2/token`: NHS API-platform-style application-restricted access (signed-JWT
//! client credentials; `cpis_auth::client_credentials` checks and issues). The body is a form;
//! answers are RFC 6749 JSON (`{"error", "error_description"}` with 400/401 on refusal), never
//! cached. Every outcome is audited by the token endpoint.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cpis_auth::client_credentials::{OAuthError, TokenEndpoint, TokenForm};
use cpis_auth::jwks::FetchPolicy;
use serde_json::json;
use std::sync::Arc;

/// Token requests are a few kilobytes at most.
const BODY_LIMIT: usize = 64 * 1024;

/// The token endpoint as the server keeps it: built at first use, when the public base URL (and
/// with it the token URL every assertion must name as `aud`) is known.
#[derive(Default)]
pub struct TokenService {
    /// Where clients' JWKS URLs may point.
    policy: FetchPolicy,
    endpoint: std::sync::OnceLock<Arc<TokenEndpoint>>,
}

impl TokenService {
    pub fn new(policy: FetchPolicy) -> Self {
        TokenService {
            policy,
            endpoint: Default::default(),
        }
    }

    fn endpoint(&self, state: &AppState) -> Option<Arc<TokenEndpoint>> {
        let base = state.public_base_url()?;
        Some(
            self.endpoint
                .get_or_init(|| {
                    Arc::new(TokenEndpoint::new(
                        state.store.clone(),
                        state.clock.clone(),
                        format!("{}/oauth2/token", base.trim_end_matches('/')),
                        self.policy,
                    ))
                })
                .clone(),
        )
    }
}

fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn refusal(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    no_store(
        (
            status,
            Json(json!({"error": e.error, "error_description": e.description})),
        )
            .into_response(),
    )
}

pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let address = crate::auth::client_address(&parts);
    let trace = crate::auth::trace_id(&parts);
    let Some(endpoint) = state.oauth.endpoint(&state) else {
        return refusal(&OAuthError {
            error: "temporarily_unavailable",
            description: "the token endpoint needs public_base_url".into(),
            unavailable: true,
        });
    };
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    let form = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) if form_type => serde_urlencoded::from_bytes::<TokenForm>(&bytes).ok(),
        _ => None,
    };
    let outcome = tokio::task::spawn_blocking(move || match form {
        Some(form) => endpoint.exchange(&form, &address, trace.as_deref()),
        None => Err(endpoint.refuse(
            "invalid_request",
            "the body must be an application/x-www-form-urlencoded form",
            &address,
            trace.as_deref(),
        )),
    })
    .await;
    match outcome {
        Ok(Ok(issued)) => no_store(Json(issued).into_response()),
        Ok(Err(e)) => refusal(&e),
        Err(_) => refusal(&OAuthError {
            error: "server_error",
            description: "the request could not be completed".into(),
            unavailable: true,
        }),
    }
}
