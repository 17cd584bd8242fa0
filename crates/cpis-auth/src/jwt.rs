//! Bearer JWTs from an external OIDC identity provider, verified against its JWKS: RS256 or
//! ES256 only, with issuer, audience, expiry and not-before checked.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIdentity {
    pub subject: String,
    pub name: String,
    pub role: String,
    pub organisation: String,
    pub permissions: String,
    /// The `nonce` claim, which an OpenID Connect ID token carries back from the sign-in request.
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("JWKS is not valid: {0}")]
    BadJwks(String),
    #[error("token rejected: {0}")]
    Rejected(String),
}

pub struct JwtVerifier {
    keys: JwkSet,
    config: JwtConfig,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys.keys.len())
            .finish()
    }
}

fn rejected(why: impl Into<String>) -> JwtError {
    JwtError::Rejected(why.into())
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> Result<Self, JwtError> {
        let keys: JwkSet = serde_json::from_str(&config.jwks_json)
            .map_err(|e| JwtError::BadJwks(e.to_string()))?;
        if keys.keys.is_empty() {
            return Err(JwtError::BadJwks("no keys".into()));
        }
        Ok(JwtVerifier { keys, config })
    }

    /// Whether a bearer token looks like a JWT (three base64url parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    /// The provider's issuer and the claim names, for a verifier of the same provider's ID tokens.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    pub fn verify(&self, token: &str) -> Result<JwtIdentity, JwtError> {
        let header = decode_header(token).map_err(|e| rejected(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(rejected("only RS256 and ES256 are accepted"));
        }
        let jwk = match &header.kid {
            Some(kid) => self
                .keys
                .find(kid)
                .ok_or_else(|| rejected("unknown key id"))?,
            None if self.keys.keys.len() == 1 => &self.keys.keys[0],
            None => return Err(rejected("token names no key id")),
        };
        let family_ok = matches!(
            (&jwk.algorithm, header.alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS256)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
        );
        if !family_ok {
            return Err(rejected("algorithm does not match the key"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| rejected(e.to_string()))?;
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
        })
    }
}
