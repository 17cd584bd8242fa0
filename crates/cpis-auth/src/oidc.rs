//! Browser sign-in through an OpenID Connect identity provider (NHS CIS2 in production): the
//! authorization-code flow with PKCE (S256), `state` and `nonce`.
//!
//! This module moves no bytes: it builds the authorization URL and the token request, and checks
//! what comes back. The web layer (`cpis-web/src/sign_in_oidc.rs`) does the redirects, the
//! cookie and the HTTP call to the token endpoint. The ID token is verified like an API JWT
//! (same JWKS, issuer and claim names) except that its audience is cpis's client id and its
//! `nonce` must be the one this browser was sent off with.

use crate::jwt::{JwtConfig, JwtError, JwtIdentity, JwtVerifier};
use crate::secret;
use base64::Engine;
use sha2::{Digest, Sha256};

/// How cpis is registered with the identity provider as a web client.
#[derive(Debug, Clone)]
pub struct OidcClientConfig {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// A confidential client's secret (sent with HTTP Basic); `None` for a public client.
    pub client_secret: Option<String>,
    /// `https://<cpis>/sign-in/oidc/callback`, exactly as registered with the provider.
    pub redirect_uri: String,
    /// Space-separated scopes; must include `openid`.
    pub scope: String,
    /// The sign-in button's text, e.g. "Sign in with NHS Care Identity".
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC sign-in is not configured correctly: {0}")]
    Config(String),
    #[error("the sign-in attempt is unknown or has expired")]
    NoPendingSignIn,
    #[error("the state returned by the identity provider does not match")]
    StateMismatch,
    #[error("the identity provider refused the sign-in: {0}")]
    ProviderRefused(String),
    #[error("the identity provider's token response is not usable: {0}")]
    BadTokenResponse(String),
    #[error("the ID token was rejected: {0}")]
    IdToken(JwtError),
    #[error("the ID token's nonce does not match")]
    NonceMismatch,
}

/// What the browser keeps between leaving for the provider and coming back: three random values
/// in one short-lived cookie. Nothing in it is worth anything without the provider's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

impl PendingSignIn {
    fn new() -> Self {
        PendingSignIn {
            state: secret::random(),
            nonce: secret::random(),
            code_verifier: secret::random(),
        }
    }

    pub fn cookie_value(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.code_verifier)
    }

    /// Parses [`Self::cookie_value`]; anything else is no pending sign-in.
    pub fn from_cookie_value(value: &str) -> Result<Self, OidcError> {
        let parts: Vec<&str> = value.split('.').collect();
        let well_formed = |p: &str| {
            (43..=128).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        match parts.as_slice() {
            [state, nonce, verifier] if parts.iter().all(|p| well_formed(p)) => Ok(PendingSignIn {
                state: (*state).to_owned(),
                nonce: (*nonce).to_owned(),
                code_verifier: (*verifier).to_owned(),
            }),
            _ => Err(OidcError::NoPendingSignIn),
        }
    }

    /// The PKCE S256 challenge of the verifier (RFC 7636 section 4.2).
    pub fn code_challenge(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(self.code_verifier.as_bytes()))
    }
}

/// The provider's redirect back to `redirect_uri`: `state` and either `code` or `error`, and
/// (RFC 9207) the issuer that answered.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

/// The token request to make: `POST url` with `form` (x-www-form-urlencoded) and, for a
/// confidential client, `Authorization: <authorization>`.
#[derive(Clone)]
pub struct TokenRequest {
    pub url: String,
    pub form: Vec<(&'static str, String)>,
    pub authorization: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code, verifier and secret stay out of debug output.
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .finish()
    }
}

/// cpis as an OpenID Connect client of one provider.
#[derive(Debug)]
pub struct OidcSignIn {
    client: OidcClientConfig,
    id_tokens: JwtVerifier,
}

fn form_encode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .map(|s| s[2..].to_owned())
        .unwrap_or_default()
}

impl OidcSignIn {
    /// `provider`: the identity provider as configured for API JWTs (JWKS, issuer, claim names);
    /// ID tokens are checked against the same keys with the client id as their audience.
    pub fn new(client: OidcClientConfig, provider: &JwtConfig) -> Result<Self, OidcError> {
        let id_tokens = JwtVerifier::new(JwtConfig {
            audience: client.client_id.clone(),
            ..provider.clone()
        })
        .map_err(|e| OidcError::Config(e.to_string()))?;
        Self::with_verifier(client, id_tokens)
    }

    /// `id_tokens`: the provider's verifier (keys, issuer, claim reading, e.g. NHS CIS2 with
    /// keys from its `jwks_uri`) with cpis's client id as the audience
    /// ([`JwtVerifier::for_audience`]).
    pub fn with_verifier(
        client: OidcClientConfig,
        id_tokens: JwtVerifier,
    ) -> Result<Self, OidcError> {
        for (name, url) in [
            ("authorization_endpoint", &client.authorization_endpoint),
            ("token_endpoint", &client.token_endpoint),
            ("redirect_uri", &client.redirect_uri),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(OidcError::Config(format!("{name} must be an http(s) URL")));
            }
        }
        if client.client_id.trim().is_empty() {
            return Err(OidcError::Config("client_id is empty".into()));
        }
        if !client.scope.split_whitespace().any(|s| s == "openid") {
            return Err(OidcError::Config("scope must include openid".into()));
        }
        if id_tokens.config().audience != client.client_id {
            return Err(OidcError::Config(
                "ID tokens must be checked with the client id as audience".into(),
            ));
        }
        Ok(OidcSignIn { client, id_tokens })
    }

    pub fn label(&self) -> &str {
        &self.client.label
    }

    /// A new sign-in: what the browser keeps, and where to send it.
    pub fn begin(&self) -> (PendingSignIn, String) {
        let pending = PendingSignIn::new();
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", &self.client.client_id),
            ("redirect_uri", &self.client.redirect_uri),
            ("scope", &self.client.scope),
            ("state", &pending.state),
            ("nonce", &pending.nonce),
            ("code_challenge", &pending.code_challenge()),
            ("code_challenge_method", "S256"),
        ])
        .unwrap_or_default();
        let sep = if self.client.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}{query}", self.client.authorization_endpoint);
        (pending, url)
    }

    /// Checks the provider's redirect back against the pending sign-in, and gives the token
    /// request to make.
    pub fn callback(
        &self,
        pending: &PendingSignIn,
        back: &Callback,
    ) -> Result<TokenRequest, OidcError> {
        if !back
            .state
            .as_deref()
            .is_some_and(|s| secret::equal(s, &pending.state))
        {
            return Err(OidcError::StateMismatch);
        }
        if back
            .iss
            .as_deref()
            .is_some_and(|iss| iss != self.id_tokens.config().issuer)
        {
            return Err(OidcError::ProviderRefused("another issuer answered".into()));
        }
        if let Some(error) = &back.error {
            return Err(OidcError::ProviderRefused(printable(error)));
        }
        let code = back
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| OidcError::ProviderRefused("no authorization code".into()))?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.client.redirect_uri.clone()),
            ("code_verifier", pending.code_verifier.clone()),
        ];
        let authorization = match &self.client.client_secret {
            Some(secret) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    form_encode(&self.client.client_id),
                    form_encode(secret)
                ))
            )),
            None => {
                form.push(("client_id", self.client.client_id.clone()));
                None
            }
        };
        Ok(TokenRequest {
            url: self.client.token_endpoint.clone(),
            form,
            authorization,
        })
    }

    /// Reads the token endpoint's JSON answer: verifies the ID token and its nonce.
    pub fn finish(&self, pending: &PendingSignIn, body: &str) -> Result<JwtIdentity, OidcError> {
        let json: serde_json::Value = serde_json::from_str(body)
            .map_err(|_| OidcError::BadTokenResponse("not JSON".into()))?;
        if let Some(error) = json.get("error").and_then(|e| e.as_str()) {
            return Err(OidcError::ProviderRefused(printable(error)));
        }
        let id_token = json
            .get("id_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| OidcError::BadTokenResponse("no id_token".into()))?;
        let access_token = json.get("access_token").and_then(|t| t.as_str());
        let identity = self
            .id_tokens
            .verify_id_token(id_token, access_token)
            .map_err(OidcError::IdToken)?;
        match &identity.nonce {
            Some(n) if secret::equal(n, &pending.nonce) => Ok(identity),
            _ => Err(OidcError::NonceMismatch),
        }
    }
}

/// A provider's error code, safe to log and show: short, printable ASCII.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> JwtConfig {
        JwtConfig {
            jwks_json: r#"{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#.into(),
            issuer: "https://idp.example".into(),
            audience: "cpis-api".into(),
            org_claim: "ods".into(),
            permissions_claim: "cpis_permissions".into(),
        }
    }

    fn client(secret: Option<&str>) -> OidcClientConfig {
        OidcClientConfig {
            authorization_endpoint: "https://idp.example/authorize".into(),
            token_endpoint: "https://idp.example/token".into(),
            client_id: "cpis web".into(),
            client_secret: secret.map(str::to_owned),
            redirect_uri: "https://cpis.example/sign-in/oidc/callback".into(),
            scope: "openid profile".into(),
            label: "Sign in with the test provider".into(),
        }
    }

    #[test]
    fn the_authorization_url_carries_state_nonce_and_an_s256_challenge() {
        let oidc = OidcSignIn::new(client(None), &provider()).unwrap();
        let (pending, url) = oidc.begin();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://idp.example/authorize");
        let q: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(query).unwrap();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cpis web");
        assert_eq!(
            q["redirect_uri"],
            "https://cpis.example/sign-in/oidc/callback"
        );
        assert_eq!(q["scope"], "openid profile");
        assert_eq!(q["state"], pending.state);
        assert_eq!(q["nonce"], pending.nonce);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pending.code_challenge());
        assert!(
            !url.contains(&pending.code_verifier),
            "the verifier never leaves cpis"
        );
        // Every sign-in gets its own values.
        let (other, _) = oidc.begin();
        assert_ne!(other, pending);
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        let p = PendingSignIn {
            state: String::new(),
            nonce: String::new(),
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            p.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_cookie_round_trips_and_anything_else_is_no_pending_sign_in() {
        let p = PendingSignIn::new();
        assert_eq!(PendingSignIn::from_cookie_value(&p.cookie_value()), Ok(p));
        for bad in [
            "",
            "a.b.c",
            "x",
            &format!("{}.{}", secret::random(), secret::random()),
        ] {
            assert_eq!(
                PendingSignIn::from_cookie_value(bad),
                Err(OidcError::NoPendingSignIn),
                "{bad}"
            );
        }
        let with_bad_char = format!(
            "{}.{}.{}=",
            secret::random(),
            secret::random(),
            secret::random()
        );
        assert!(PendingSignIn::from_cookie_value(&with_bad_char).is_err());
    }

    #[test]
    fn the_callback_needs_the_same_state_and_a_code() {
        let oidc = OidcSignIn::new(client(Some("s3cret:&")), &provider()).unwrap();
        let (pending, _) = oidc.begin();
        let other = PendingSignIn::new();
        let back = |state: Option<&str>, code: Option<&str>, error: Option<&str>| Callback {
            state: state.map(str::to_owned),
            code: code.map(str::to_owned),
            error: error.map(str::to_owned),
            iss: None,
        };
        assert_eq!(
            oidc.callback(&pending, &back(Some(&other.state), Some("code"), None))
                .unwrap_err(),
            OidcError::StateMismatch
        );
        assert_eq!(
            oidc.callback(&pending, &back(None, Some("code"), None))
                .unwrap_err(),
            OidcError::StateMismatch
        );
        assert_eq!(
            oidc.callback(
                &pending,
                &back(Some(&pending.state), None, Some("access_denied\n<b>"))
            )
            .unwrap_err(),
            OidcError::ProviderRefused("access_denied<b>".into())
        );
        assert!(matches!(
            oidc.callback(&pending, &back(Some(&pending.state), None, None)),
            Err(OidcError::ProviderRefused(_))
        ));
        let mut elsewhere = back(Some(&pending.state), Some("c"), None);
        elsewhere.iss = Some("https://other.example".into());
        assert!(matches!(
            oidc.callback(&pending, &elsewhere),
            Err(OidcError::ProviderRefused(_))
        ));
        elsewhere.iss = Some("https://idp.example".into());
        assert!(oidc.callback(&pending, &elsewhere).is_ok());
        let req = oidc
            .callback(
                &pending,
                &back(Some(&pending.state), Some("the-code"), None),
            )
            .unwrap();
        assert_eq!(req.url, "https://idp.example/token");
        let form: std::collections::HashMap<_, _> = req.form.iter().cloned().collect();
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "the-code");
        assert_eq!(form["code_verifier"], pending.code_verifier);
        assert!(
            !form.contains_key("client_id"),
            "a confidential client uses Basic"
        );
        // RFC 6749 2.3.1: id and secret are form-encoded before base64.
        let basic = req.authorization.unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "cpis+web:s3cret%3A%26");
        let debug = format!(
            "{:?}",
            oidc.callback(&pending, &back(Some(&pending.state), Some("c0de"), None))
        );
        assert!(
            !debug.contains("s3cret")
                && !debug.contains("c0de")
                && !debug.contains(&pending.code_verifier)
        );

        let public = OidcSignIn::new(client(None), &provider()).unwrap();
        let req = public
            .callback(&pending, &back(Some(&pending.state), Some("c"), None))
            .unwrap();
        assert!(req.authorization.is_none());
        assert!(req.form.contains(&("client_id", "cpis web".to_owned())));
    }

    #[test]
    fn token_responses_without_a_valid_id_token_are_refused() {
        let oidc = OidcSignIn::new(client(None), &provider()).unwrap();
        let (pending, _) = oidc.begin();
        assert!(matches!(
            oidc.finish(&pending, "not json"),
            Err(OidcError::BadTokenResponse(_))
        ));
        assert_eq!(
            oidc.finish(&pending, r#"{"error":"invalid_grant"}"#),
            Err(OidcError::ProviderRefused("invalid_grant".into()))
        );
        assert!(matches!(
            oidc.finish(&pending, r#"{"access_token":"x"}"#),
            Err(OidcError::BadTokenResponse(_))
        ));
        assert!(matches!(
            oidc.finish(
                &pending,
                r#"{"id_token":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}"#
            ),
            Err(OidcError::IdToken(_))
        ));
    }

    #[test]
    fn configuration_mistakes_are_reported() {
        let mut c = client(None);
        c.scope = "profile".into();
        assert!(matches!(
            OidcSignIn::new(c, &provider()),
            Err(OidcError::Config(_))
        ));
        let mut c = client(None);
        c.token_endpoint = "idp.example/token".into();
        assert!(matches!(
            OidcSignIn::new(c, &provider()),
            Err(OidcError::Config(_))
        ));
    }
}
