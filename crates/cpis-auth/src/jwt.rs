//! Bearer JWTs from an external OIDC identity provider, verified against its JWKS: RS256,
//! RS512 or ES256 only, with issuer, audience, expiry and not-before checked.
//!
//! The keys are a [`KeySet`]: a JWKS file, or (NHS CIS2) the provider's `jwks_uri`, refetched
//! when a token names a key it does not know. With [`JwtVerifier::cis2`] the identity is read
//! from CIS2 claims (`crate::cis2`): the selected role's organisation and activity codes, the
//! SDS user id and role, the assurance level; roles missing from the token are read from the
//! provider's userinfo endpoint with the token itself (or, at web sign-in, the access token).

use crate::cis2::{self, Cis2Rules};
use crate::jwks::{FetchPolicy, KeySet};
use cpis_domain::{NhsIdentity, WorkContact};
use jsonwebtoken::jwk::AlgorithmParameters;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How the identity provider's tokens are checked and read.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The JWKS document (JSON) of the identity provider.
    pub jwks_json: String,
    pub issuer: String,
    pub audience: String,
    /// Claim holding the caller's organisation ODS code.
    pub org_claim: String,
    /// Claim holding permissions: an array of strings or a space-separated string.
    pub permissions_claim: String,
}

/// The identity a valid token asserts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwtIdentity {
    pub subject: String,
    pub name: String,
    pub role: String,
    pub organisation: String,
    pub permissions: String,
    /// The `nonce` claim, which an OpenID Connect ID token carries back from the sign-in request.
    pub nonce: Option<String>,
    /// NHS CIS2 only: the SDS user id and the selected role.
    pub nhs: NhsIdentity,
    /// NHS CIS2 only: the sign-in's assurance level (`crate::cis2`).
    pub assurance_level: Option<u8>,
    /// The person's work contact from the standard OpenID Connect `phone_number` and `email`
    /// claims (for CIS2, the token's or else userinfo's); a value that does not parse is left out.
    pub contact: WorkContact,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("JWKS is not valid: {0}")]
    BadJwks(String),
    #[error("token rejected: {0}")]
    Rejected(String),
}

pub struct JwtVerifier {
    keys: Arc<KeySet>,
    config: JwtConfig,
    cis2: Option<Arc<Cis2Mode>>,
}

/// Reading NHS CIS2 claims, with the provider's userinfo endpoint for roles a token lacks.
struct Cis2Mode {
    rules: Cis2Rules,
    userinfo_endpoint: Option<String>,
    policy: FetchPolicy,
    /// Userinfo answers by token digest, kept briefly: a client calling the API with one token
    /// many times a minute asks the provider once.
    userinfo_cache: Mutex<HashMap<String, (Instant, Value)>>,
}

const USERINFO_CACHE: Duration = Duration::from_secs(60);

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys)
            .field("cis2", &self.cis2.is_some())
            .finish()
    }
}

fn rejected(why: impl Into<String>) -> JwtError {
    JwtError::Rejected(why.into())
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> Result<Self, JwtError> {
        let keys =
            KeySet::fixed(&config.jwks_json).map_err(|e| JwtError::BadJwks(e.to_string()))?;
        Ok(JwtVerifier {
            keys: Arc::new(keys),
            config,
            cis2: None,
        })
    }

    /// Tokens checked against `keys` (e.g. fetched from the provider's `jwks_uri`);
    /// `config.jwks_json` is not used.
    pub fn with_keys(config: JwtConfig, keys: Arc<KeySet>) -> Self {
        JwtVerifier {
            keys,
            config,
            cis2: None,
        }
    }

    /// Reads identities from NHS CIS2 claims (`crate::cis2`) instead of the organisation and
    /// permissions claims; roles a token lacks come from `userinfo_endpoint`.
    pub fn cis2(
        mut self,
        rules: Cis2Rules,
        userinfo_endpoint: Option<String>,
        policy: FetchPolicy,
    ) -> Self {
        self.cis2 = Some(Arc::new(Cis2Mode {
            rules,
            userinfo_endpoint,
            policy,
            userinfo_cache: Mutex::new(HashMap::new()),
        }));
        self
    }

    /// The CIS2 rules, when this verifier reads CIS2 claims.
    pub fn cis2_rules(&self) -> Option<Cis2Rules> {
        self.cis2.as_ref().map(|m| m.rules)
    }

    /// A verifier of the same provider (keys, claim reading) for another audience: ID tokens,
    /// whose audience is cpis's client id.
    pub fn for_audience(&self, audience: &str) -> Self {
        JwtVerifier {
            keys: self.keys.clone(),
            config: JwtConfig {
                audience: audience.to_owned(),
                ..self.config.clone()
            },
            cis2: self.cis2.clone(),
        }
    }

    /// Whether a bearer token looks like a JWT (three base64url parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    /// The provider's issuer and the claim names, for a verifier of the same provider's ID tokens.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// A bearer token: in CIS2 mode, roles it lacks are read from userinfo with the token.
    pub fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        self.verify_with(token, Some(token))
    }

    /// An ID token from a sign-in: in CIS2 mode, roles it lacks are read from userinfo with
    /// the access token of the same token response.
    pub fn verify_id_token(
        &self,
        id_token: &str,
        access_token: Option<&str>,
    ) -> Result<JwtIdentity, JwtError> {
        self.verify_with(id_token, access_token)
    }

    fn verify_with(
        &self,
        token: &str,
        userinfo_bearer: Option<&str>,
    ) -> Result<JwtIdentity, JwtError> {
        let header = decode_header(token).map_err(|e| rejected(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS512 | Algorithm::ES256
        ) {
            return Err(rejected("only RS256, RS512 and ES256 are accepted"));
        }
        if header.kid.is_none() && self.keys.len() != 1 {
            return Err(rejected("token names no key id"));
        }
        let jwk = self
            .keys
            .find(header.kid.as_deref())
            .ok_or_else(|| rejected("unknown key id"))?;
        let family_ok = matches!(
            (&jwk.algorithm, header.alg),
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256 | Algorithm::RS512
            ) | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
        );
        if !family_ok {
            return Err(rejected("algorithm does not match the key"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| rejected(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[&self.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 30;
        let data = decode::<Value>(token, &key, &v).map_err(|e| rejected(e.to_string()))?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub").ok_or_else(|| rejected("no subject"))?;
        if let Some(mode) = &self.cis2 {
            return mode.identity(&claims, subject, text("nonce"), userinfo_bearer);
        }
        let organisation =
            text(&self.config.org_claim).ok_or_else(|| rejected("no organisation claim"))?;
        let permissions = match claims.get(&self.config.permissions_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => return Err(rejected("no permissions claim")),
        };
        Ok(JwtIdentity {
            name: text("name").unwrap_or_else(|| subject.clone()),
            role: text("role").unwrap_or_else(|| "User".into()),
            nonce: text("nonce"),
            subject,
            organisation,
            permissions,
            nhs: NhsIdentity::default(),
            assurance_level: None,
            contact: WorkContact::from_claims(
                text("phone_number").as_deref(),
                text("email").as_deref(),
            ),
        })
    }
}

impl Cis2Mode {
    fn identity(
        &self,
        claims: &Value,
        subject: String,
        nonce: Option<String>,
        userinfo_bearer: Option<&str>,
    ) -> Result<JwtIdentity, JwtError> {
        let userinfo = if cis2::has_roles(claims) {
            None
        } else {
            let endpoint = self
                .userinfo_endpoint
                .as_deref()
                .ok_or_else(|| rejected("no nhsid_nrbac_roles and no userinfo endpoint"))?;
            let bearer = userinfo_bearer
                .ok_or_else(|| rejected("no nhsid_nrbac_roles and no token for userinfo"))?;
            Some(self.userinfo(endpoint, bearer)?)
        };
        if let Some(info) = &userinfo {
            // OpenID Connect Core 5.3.2: the answer must be about the token's subject.
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(rejected("userinfo is about another subject"));
            }
        }
        let person =
            cis2::person(claims, userinfo.as_ref()).map_err(|e| rejected(format!("CIS2: {e}")))?;
        Ok(JwtIdentity {
            subject,
            name: person.name,
            role: person.role_name,
            organisation: person.organisation,
            permissions: person.permissions.to_string(),
            nonce,
            nhs: person.nhs,
            assurance_level: Some(person.assurance_level),
            contact: person.contact,
        })
    }

    fn userinfo(&self, endpoint: &str, bearer: &str) -> Result<Value, JwtError> {
        let key = crate::secret::digest(bearer);
        {
            let cache = self
                .userinfo_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, v)) = cache.get(&key) {
                if at.elapsed() < USERINFO_CACHE {
                    return Ok(v.clone());
                }
            }
        }
        let info = self
            .policy
            .get_json(endpoint, Some(bearer))
            .map_err(|e| rejected(format!("userinfo: {e}")))?;
        let mut cache = self
            .userinfo_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }
}
