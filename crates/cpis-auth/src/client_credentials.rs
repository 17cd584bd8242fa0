//! NHS API-platform-style application-restricted access: signed-JWT client credentials
//! (private_key_jwt, RFC 7523) at `POST /oauth2/token`.
//!
//! A client registered by an operator (`cpis clients add`, [`register_audited`]) sends
//! `grant_type=client_credentials`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a
//! `client_assertion`: a JWT signed **RS512** with one of its registered keys (`kid`), with
//! `iss = sub = client id`, `aud` = cpis's token URL, a `jti` never used before and an `exp` at
//! most five minutes ahead. cpis answers an opaque access token valid for ten minutes; only its
//! digest is stored (as an expiring API token of the client's system identity
//! `client:<client id>`, which carries its organisation and permissions). Seen `jti`s are kept in
//! the database until their assertion expires, so every server sharing the database refuses a
//! replay. Refusals follow RFC 6749 section 5.2 and are all audited (`auth.token`).

use crate::authenticator::CLIENT_USER_PREFIX;
use crate::jwks::{FetchPolicy, KeySet};
use crate::secret;
use chrono::{DateTime, Duration, Utc};
use cpis_domain::{AuditActor, AuditEntry, AuditOutcome, Clock, OdsCode, Permissions};
use cpis_store::{ClientKeys, IdentityChange, NewApiToken, OAuthClient, Store, User, UserKind};
use jsonwebtoken::jwk::AlgorithmParameters;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest a client assertion may live ahead of now.
pub const MAX_ASSERTION_SECONDS: i64 = 300;
/// How long an access token issued here is valid.
pub const ACCESS_TOKEN_SECONDS: i64 = 600;

/// The form body of a token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

/// A successful answer (RFC 6749 section 5.1).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// A refusal (RFC 6749 section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `invalid_grant`.
    pub error: &'static str,
    pub description: String,
    /// Whether this is a store failure (answered 503, not audited as a refusal).
    pub unavailable: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
            unavailable: false,
        }
    }
    fn request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    fn client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }
    fn unavailable() -> Self {
        OAuthError {
            error: "temporarily_unavailable",
            description: "the service is temporarily unavailable".into(),
            unavailable: true,
        }
    }
    /// 401 for a client that could not be authenticated, 503 for a store failure, else 400.
    pub fn status(&self) -> u16 {
        match (self.unavailable, self.error) {
            (true, _) => 503,
            (_, "invalid_client") => 401,
            _ => 400,
        }
    }
}

impl From<cpis_store::StoreError> for OAuthError {
    fn from(e: cpis_store::StoreError) -> Self {
        tracing::warn!(error = %e, "token endpoint store error");
        OAuthError::unavailable()
    }
}

/// `POST /oauth2/token`.
pub struct TokenEndpoint {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// cpis's public token URL: the `aud` every assertion must name.
    token_url: String,
    policy: FetchPolicy,
    /// Keys of clients registered by JWKS URL, fetched on first use and on an unknown `kid`.
    url_keys: Mutex<HashMap<String, Arc<KeySet>>>,
}

impl TokenEndpoint {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        token_url: String,
        policy: FetchPolicy,
    ) -> Self {
        TokenEndpoint {
            store,
            clock,
            token_url,
            policy,
            url_keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// Checks a token request and issues an access token; every outcome is audited.
    pub fn exchange(
        &self,
        form: &TokenForm,
        address: &str,
        trace: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        let mut claimed = None;
        let result = self.check(form, &mut claimed);
        let (actor, outcome, detail) = match (&result, &claimed) {
            (Ok((_, user, _)), _) => (
                actor_of(user),
                AuditOutcome::Success,
                "client_credentials: access token issued".to_owned(),
            ),
            (Err(e), _) if e.unavailable => return Err(e.clone()),
            (Err(e), Some(user)) => (actor_of(user), AuditOutcome::Denied, format!("{e}")),
            (Err(e), None) => (
                AuditActor::anonymous(),
                AuditOutcome::Denied,
                format!("{e}"),
            ),
        };
        let entry = AuditEntry::new(
            self.clock.now(),
            actor,
            "auth.token",
            trace.map(str::to_owned),
        )
        .outcome(outcome)
        .detail(format!("{detail} (from {address})"));
        let (token, user, now) = match result {
            Ok(v) => v,
            Err(e) => {
                self.audit(&entry);
                return Err(e);
            }
        };
        let stored = NewApiToken {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            token_hash: secret::digest(&token),
            label: "oauth2 client_credentials".into(),
            created_at: now,
            expires_at: Some(now + Duration::seconds(ACCESS_TOKEN_SECONDS)),
        };
        // The token and its audit entry in one transaction.
        self.store
            .change_identity(&IdentityChange::CreateToken(stored), now, &entry)?;
        Ok(IssuedToken {
            access_token: token,
            token_type: "bearer",
            expires_in: ACCESS_TOKEN_SECONDS,
        })
    }

    /// Refuses a request that could not even be read (audited like every refusal).
    pub fn refuse(
        &self,
        error: &'static str,
        description: &str,
        address: &str,
        trace: Option<&str>,
    ) -> OAuthError {
        let e = OAuthError::new(error, description);
        self.audit(
            &AuditEntry::new(
                self.clock.now(),
                AuditActor::anonymous(),
                "auth.token",
                trace.map(str::to_owned),
            )
            .denied()
            .detail(format!("{e} (from {address})")),
        );
        e
    }

    fn audit(&self, entry: &AuditEntry) {
        if let Err(e) = self.store.append_audit(entry) {
            tracing::warn!(error = %e, "could not audit a token request");
        }
    }

    fn keys_of(&self, client: &OAuthClient) -> Result<Arc<KeySet>, OAuthError> {
        match &client.keys {
            ClientKeys::Jwks(json) => KeySet::fixed(json)
                .map(Arc::new)
                .map_err(|e| OAuthError::client(format!("the client's registered JWKS: {e}"))),
            ClientKeys::JwksUrl(url) => {
                let mut cache = self.url_keys.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(k) = cache.get(url) {
                    return Ok(k.clone());
                }
                let keys = Arc::new(
                    KeySet::lazy_url(url, self.policy)
                        .map_err(|e| OAuthError::client(format!("the client's JWKS URL: {e}")))?,
                );
                cache.insert(url.clone(), keys.clone());
                Ok(keys)
            }
        }
    }

    fn check(
        &self,
        form: &TokenForm,
        claimed: &mut Option<User>,
    ) -> Result<(String, User, DateTime<Utc>), OAuthError> {
        let now = self.clock.now();
        match form.grant_type.as_deref() {
            None | Some("") => return Err(OAuthError::request("grant_type is missing")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "grant_type must be client_credentials",
                ))
            }
        }
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(OAuthError::request(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        let assertion = form
            .client_assertion
            .as_deref()
            .filter(|a| !a.is_empty() && a.len() <= 16 * 1024)
            .ok_or_else(|| OAuthError::request("client_assertion is missing"))?;
        let header = decode_header(assertion)
            .map_err(|_| OAuthError::request("client_assertion is not a JWT"))?;
        if header.alg != Algorithm::RS512 {
            return Err(OAuthError::client(
                "the client assertion must be signed RS512",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| OAuthError::request("the client assertion names no kid"))?;
        // Who it claims to be, before the signature says whether it is.
        let unverified = unverified_claims(assertion)
            .ok_or_else(|| OAuthError::request("client_assertion is not a JWT"))?;
        let text = |name: &str| unverified.get(name).and_then(Value::as_str);
        let iss = text("iss").ok_or_else(|| OAuthError::request("iss is missing"))?;
        if text("sub") != Some(iss) {
            return Err(OAuthError::request(
                "iss and sub must both be the client id",
            ));
        }
        let (client, user) = self
            .store
            .oauth_client(iss)?
            .ok_or_else(|| OAuthError::client("unknown client"))?;
        *claimed = Some(user.clone());
        if user.disabled {
            return Err(OAuthError::client("the client is disabled"));
        }
        let jwk = self
            .keys_of(&client)?
            .find(Some(&kid))
            .ok_or_else(|| OAuthError::client(format!("no registered key has kid {kid}")))?;
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            return Err(OAuthError::client("the key named is not an RSA key"));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| OAuthError::client("the registered key is not usable"))?;
        let mut v = Validation::new(Algorithm::RS512);
        v.set_audience(&[&self.token_url]);
        v.set_issuer(&[iss]);
        v.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
        // Expiry is checked below against cpis's clock, exactly.
        v.validate_exp = false;
        v.validate_nbf = true;
        let claims = decode::<Value>(assertion, &key, &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidAudience => {
                        OAuthError::request(format!("aud must be the token URL {}", self.token_url))
                    }
                    ErrorKind::InvalidSignature => {
                        OAuthError::client("the client assertion's signature is not valid")
                    }
                    _ => OAuthError::request(format!("client_assertion rejected: {e}")),
                }
            })?
            .claims;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| OAuthError::request("exp must be a number"))?;
        let ahead = exp - now.timestamp();
        if ahead <= 0 {
            return Err(OAuthError::request("the client assertion has expired"));
        }
        if ahead > MAX_ASSERTION_SECONDS {
            return Err(OAuthError::request(
                "exp is more than 5 minutes in the future",
            ));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| (1..=256).contains(&j.len()))
            .ok_or_else(|| OAuthError::request("jti is missing"))?;
        let expires = DateTime::from_timestamp(exp, 0).unwrap_or(now);
        if !self
            .store
            .use_assertion_jti(&client.client_id, jti, expires, now)?
        {
            return Err(OAuthError::request(
                "jti has been used before: a client assertion may be used only once",
            ));
        }
        Ok((secret::new_api_token(), user, now))
    }
}

fn actor_of(user: &User) -> AuditActor {
    AuditActor {
        id: user.username.clone(),
        name: user.display_name.clone(),
        organisation: Some(user.organisation.to_string()),
        role: format!("{} [{}]", user.role, user.permissions),
    }
}

/// The payload of a JWT, unverified (only to find which client's keys to verify it with).
fn unverified_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub display_name: String,
    pub organisation: OdsCode,
    pub permissions: Permissions,
    pub keys: ClientKeys,
    pub allow_unattended_lookups: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client id must be 3-64 characters of letters, digits, '.', '_' or '-'")]
    BadClientId,
    #[error("a client '{0}' already exists")]
    Exists(String),
    #[error("the client's keys are not usable: {0}")]
    BadKeys(String),
    #[error(transparent)]
    Store(#[from] cpis_store::StoreError),
}

/// Registers a client and its system identity `client:<client id>`, with the audit entry
/// (`admin.client.add`) written in the same transaction.
pub fn register_audited(
    store: &dyn Store,
    new: NewClient,
    policy: &FetchPolicy,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<OAuthClient, ClientError> {
    let ok = (3..=64).contains(&new.client_id.len())
        && new
            .client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(ClientError::BadClientId);
    }
    match &new.keys {
        ClientKeys::Jwks(json) => {
            let set = KeySet::fixed(json).map_err(|e| ClientError::BadKeys(e.to_string()))?;
            drop(set);
            let doc: Value = serde_json::from_str(json).unwrap_or_default();
            let all_named_rsa = doc["keys"].as_array().is_some_and(|keys| {
                keys.iter()
                    .all(|k| k["kty"] == "RSA" && k["kid"].as_str().is_some_and(|s| !s.is_empty()))
            });
            if !all_named_rsa {
                return Err(ClientError::BadKeys(
                    "every key must be an RSA key with a kid".into(),
                ));
            }
        }
        ClientKeys::JwksUrl(url) => {
            policy
                .check(url)
                .map_err(|e| ClientError::BadKeys(e.to_string()))?;
        }
    }
    let username = format!("{CLIENT_USER_PREFIX}{}", new.client_id);
    if store.oauth_client(&new.client_id)?.is_some() || store.user_by_username(&username)?.is_some()
    {
        return Err(ClientError::Exists(new.client_id));
    }
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username,
        display_name: new.display_name,
        kind: UserKind::System,
        organisation: new.organisation,
        role: "Application".into(),
        permissions: new.permissions,
        password_hash: None,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
    };
    let client = OAuthClient {
        client_id: new.client_id,
        user_id: user.id.clone(),
        keys: new.keys,
        allow_unattended_lookups: new.allow_unattended_lookups,
        created_at: now,
    };
    store.change_identity(
        &IdentityChange::RegisterClient {
            user,
            client: client.clone(),
        },
        now,
        audit,
    )?;
    Ok(client)
}
