//! Web sign-in through an OpenID Connect identity provider, in-process: the sign-in page offers
//! it only when configured, `/sign-in/oidc` starts the flow (PKCE, state, nonce, the pending
//! cookie), and every callback that does not belong to a sign-in this browser started is refused
//! with the one message and audited. The whole journey with a real provider is in
//! tests/browser/oidc_sign_in.test.mjs.

use crate::common::*;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use std::collections::HashMap;

const AUTHORIZE: &str = "https://idp.test.example/authorize";
const FAILED: &str = "Sign-in with your identity provider did not complete.";

fn client() -> cpis_auth::oidc::OidcClientConfig {
    cpis_auth::oidc::OidcClientConfig {
        authorization_endpoint: AUTHORIZE.into(),
        // Nothing listens here: these tests never get as far as the token endpoint.
        token_endpoint: "http://127.0.0.1:9/token".into(),
        client_id: "cpis-web".into(),
        client_secret: Some("test-secret".into()),
        redirect_uri: "https://cpis.test.example/sign-in/oidc/callback".into(),
        scope: "openid profile".into(),
        label: "Sign in with the test provider".into(),
    }
}

fn spawn_app_with_oidc() -> TestApp {
    spawn_app_with_options(AppOptions {
        jwt: Some(jwt_config()),
        oidc: Some(client()),
        ..AppOptions::default()
    })
}

async fn get(app: &TestApp, uri: &str, cookie: Option<&str>) -> Reply {
    let mut b = Request::get(uri).header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    app.send(b.body(Body::empty()).unwrap()).await
}

fn set_cookies(r: &Reply) -> Vec<String> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Starts a sign-in; the pending cookie (`cpis_oidc=…`) and the authorization request's query.
async fn start(app: &TestApp) -> (String, HashMap<String, String>) {
    let r = get(app, "/sign-in/oidc", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let location = r.headers[header::LOCATION].to_str().unwrap();
    let (base, query) = location.split_once('?').expect("a query");
    assert_eq!(base, AUTHORIZE);
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("cpis_oidc="))
        .expect("pending sign-in cookie");
    (
        cookie.split(';').next().unwrap().to_owned(),
        serde_urlencoded::from_str(query).unwrap(),
    )
}

#[tokio::test]
async fn without_a_provider_the_sign_in_page_offers_only_local_accounts() {
    let app = spawn_app();
    let page = get(&app, "/sign-in", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text().contains("/sign-in/oidc"));
    assert!(page
        .text()
        .contains("Sign in with the account your organisation gave you"));
    assert_eq!(
        get(&app, "/sign-in/oidc", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/sign-in/oidc/callback?code=a&state=b", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn starting_sends_the_browser_to_the_provider_with_pkce_state_and_nonce() {
    let app = spawn_app_with_oidc();
    let page = get(&app, "/sign-in", None).await;
    assert!(page.text().contains(r#"href="/sign-in/oidc""#));
    assert!(page.text().contains("Sign in with the test provider"));

    let r = get(&app, "/sign-in/oidc", None).await;
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let pending = set_cookies(&r).join("\n");
    for attribute in [
        "Path=/sign-in/oidc",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(pending.contains(attribute), "{attribute} in {pending}");
    }

    let (cookie, q) = start(&app).await;
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "cpis-web");
    assert_eq!(
        q["redirect_uri"],
        "https://cpis.test.example/sign-in/oidc/callback"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    // The cookie holds state, nonce and verifier; the provider sees state, nonce and the
    // verifier's challenge, never the verifier.
    let value = cookie.strip_prefix("cpis_oidc=").unwrap();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(q["state"], parts[0]);
    assert_eq!(q["nonce"], parts[1]);
    assert!(!q.values().any(|v| v == parts[2]));
    assert_ne!(q["code_challenge"], parts[2]);
    // A second sign-in gets fresh values.
    let (other, _) = start(&app).await;
    assert_ne!(other, cookie);
}

#[tokio::test]
async fn callbacks_that_do_not_belong_to_a_pending_sign_in_are_refused_and_audited() {
    let app = spawn_app_with_oidc();
    let (cookie, q) = start(&app).await;
    let state = &q["state"];
    let (other_cookie, _) = start(&app).await;
    let cases = [
        (
            format!("/sign-in/oidc/callback?code=c&state={state}"),
            None,
            "no pending sign-in cookie",
            "unknown or has expired",
        ),
        (
            format!("/sign-in/oidc/callback?code=c&state={state}"),
            Some(other_cookie.as_str()),
            "another sign-in's cookie",
            "state",
        ),
        (
            "/sign-in/oidc/callback?code=c&state=guessed".to_owned(),
            Some(cookie.as_str()),
            "a guessed state",
            "state",
        ),
        (
            format!("/sign-in/oidc/callback?error=access_denied&state={state}"),
            Some(cookie.as_str()),
            "the provider refused",
            "access_denied",
        ),
        (
            format!(
                "/sign-in/oidc/callback?code=c&state={state}&iss={}",
                url_encode("https://evil.example")
            ),
            Some(cookie.as_str()),
            "another issuer (RFC 9207)",
            "another issuer",
        ),
        (
            format!("/sign-in/oidc/callback?state={state}"),
            Some(cookie.as_str()),
            "no code",
            "no authorization code",
        ),
        (
            "/sign-in/oidc/callback?code=c&state=x".to_owned(),
            Some("cpis_oidc=not.a-cookie"),
            "a malformed cookie",
            "unknown or has expired",
        ),
        (
            // The right state, but the token endpoint cannot be reached.
            format!("/sign-in/oidc/callback?code=c&state={state}"),
            Some(cookie.as_str()),
            "an unreachable token endpoint",
            "token endpoint unreachable",
        ),
    ];
    for (uri, cookie, what, reason) in cases {
        let r = get(&app, &uri, cookie).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        let page = r.text();
        assert!(page.contains(FAILED), "{what}: {page}");
        assert!(
            page.contains(r##"href="#oidc-sign-in""##),
            "{what}: the error links to the button"
        );
        assert!(
            !page.contains("nhsuk-header__account"),
            "{what}: not signed in"
        );
        assert!(
            set_cookies(&r)
                .iter()
                .any(|c| c.starts_with("cpis_oidc=;") && c.contains("Max-Age=0")),
            "{what}: the pending sign-in is cleared"
        );
        assert!(
            !set_cookies(&r)
                .iter()
                .any(|c| c.starts_with("cpis_session")),
            "{what}: no session"
        );
        let audit = app.last_audit("auth.login", None).await.expect("audited");
        assert_eq!(audit["outcome"], "denied", "{what}");
        let detail = audit["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("oidc: ") && detail.contains(reason),
            "{what}: {detail}"
        );
    }
}
