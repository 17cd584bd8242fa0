//! Public keys of an identity provider or a client: a JWKS given once (a file), or fetched from
//! a URL and cached. A key id the cache does not know triggers one refetch (at most one every
//! [`KeySet::MIN_REFETCH`]), so a provider's key rotation is picked up at once while a stream of
//! tokens naming made-up keys cannot make cpis hammer the provider; a key still unknown after the
//! refetch is refused. Also OpenID Connect discovery (`{issuer}/.well-known/openid-configuration`).
//!
//! URLs must be `https://`; plain `http://` only to a loopback host and only when the policy
//! explicitly allows it (tests and local providers).

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::Value;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Where keys and provider documents may be fetched from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchPolicy {
    /// Allows `http://127.0.0.1`, `http://[::1]` and `http://localhost` (tests only).
    #[serde(default)]
    pub allow_http_loopback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not an acceptable URL: {0}")]
    Url(String),
    #[error("could not fetch {url}: {why}")]
    Http { url: String, why: String },
    #[error("{url} did not answer a usable document: {why}")]
    Document { url: String, why: String },
}

/// Documents fetched here are small; anything larger is not one.
const DOCUMENT_LIMIT: u64 = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl FetchPolicy {
    /// Checks a URL against the policy: `https`, or loopback `http` when allowed; no userinfo.
    pub fn check(&self, raw: &str) -> Result<url::Url, FetchError> {
        let url = url::Url::parse(raw).map_err(|e| FetchError::Url(format!("{raw}: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Url(format!("{raw}: no credentials in URLs")));
        }
        match url.scheme() {
            "https" if url.host().is_some() => Ok(url),
            "http" if self.allow_http_loopback && is_loopback(&url) => Ok(url),
            "http" => Err(FetchError::Url(format!(
                "{raw}: https is required (plain http only to a loopback host with allow_http_loopback)"
            ))),
            _ => Err(FetchError::Url(format!("{raw}: https is required"))),
        }
    }

    fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout(FETCH_TIMEOUT)
            .redirects(0)
            .build()
    }

    /// `GET`s a JSON document (optionally with a bearer token).
    pub fn get_json(&self, raw: &str, bearer: Option<&str>) -> Result<Value, FetchError> {
        let url = self.check(raw)?;
        let mut call = Self::agent()
            .get(url.as_str())
            .set("Accept", "application/json");
        if let Some(token) = bearer {
            call = call.set("Authorization", &format!("Bearer {token}"));
        }
        let response = call.call().map_err(|e| FetchError::Http {
            url: raw.to_owned(),
            why: match e {
                ureq::Error::Status(code, _) => format!("HTTP {code}"),
                ureq::Error::Transport(t) => t.kind().to_string(),
            },
        })?;
        let mut body = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(response.into_reader(), DOCUMENT_LIMIT),
            &mut body,
        )
        .map_err(|e| FetchError::Http {
            url: raw.to_owned(),
            why: e.to_string(),
        })?;
        serde_json::from_str(&body).map_err(|e| FetchError::Document {
            url: raw.to_owned(),
            why: e.to_string(),
        })
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What OpenID Connect discovery says about a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
}

/// Reads `{issuer}/.well-known/openid-configuration`. The document must name the same issuer
/// (OpenID Connect Discovery 1.0 section 4.3) and its URLs must pass the policy.
pub fn discover(issuer: &str, policy: &FetchPolicy) -> Result<ProviderMetadata, FetchError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = policy.get_json(&url, None)?;
    let text = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
    let bad = |why: &str| FetchError::Document {
        url: url.clone(),
        why: why.to_owned(),
    };
    let named = text("issuer").ok_or_else(|| bad("no issuer"))?;
    if named != issuer {
        return Err(bad(&format!("it names another issuer ({named})")));
    }
    let metadata = ProviderMetadata {
        issuer: named,
        jwks_uri: text("jwks_uri").ok_or_else(|| bad("no jwks_uri"))?,
        authorization_endpoint: text("authorization_endpoint"),
        token_endpoint: text("token_endpoint"),
        userinfo_endpoint: text("userinfo_endpoint"),
    };
    for u in [
        Some(&metadata.jwks_uri),
        metadata.authorization_endpoint.as_ref(),
        metadata.token_endpoint.as_ref(),
        metadata.userinfo_endpoint.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        policy.check(u)?;
    }
    Ok(metadata)
}

/// A provider's (or a client's) signing keys.
pub struct KeySet {
    keys: RwLock<JwkSet>,
    source: Source,
}

enum Source {
    Fixed,
    Url {
        url: String,
        policy: FetchPolicy,
        last_fetch: Mutex<Option<Instant>>,
        min_refetch: Duration,
    },
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .len();
        match &self.source {
            Source::Fixed => f.debug_struct("KeySet").field("keys", &keys).finish(),
            Source::Url { url, .. } => f
                .debug_struct("KeySet")
                .field("url", url)
                .field("keys", &keys)
                .finish(),
        }
    }
}

fn parse_jwks(value: Value, whence: &str) -> Result<JwkSet, FetchError> {
    let set: JwkSet = serde_json::from_value(value).map_err(|e| FetchError::Document {
        url: whence.to_owned(),
        why: format!("not a JWKS: {e}"),
    })?;
    if set.keys.is_empty() {
        return Err(FetchError::Document {
            url: whence.to_owned(),
            why: "the JWKS has no keys".into(),
        });
    }
    Ok(set)
}

impl KeySet {
    /// At most one refetch for an unknown key id in this time.
    pub const MIN_REFETCH: Duration = Duration::from_secs(30);

    /// Keys given once (a JWKS file); never refetched.
    pub fn fixed(jwks_json: &str) -> Result<Self, FetchError> {
        let value: Value = serde_json::from_str(jwks_json).map_err(|e| FetchError::Document {
            url: "JWKS".into(),
            why: e.to_string(),
        })?;
        Ok(KeySet {
            keys: RwLock::new(parse_jwks(value, "JWKS")?),
            source: Source::Fixed,
        })
    }

    /// Keys fetched from `url` now, and again when a token names a key not among them.
    pub fn from_url(url: &str, policy: FetchPolicy) -> Result<Self, FetchError> {
        Self::from_url_with(url, policy, Self::MIN_REFETCH)
    }

    /// [`Self::from_url`] with another refetch interval (tests).
    pub fn from_url_with(
        url: &str,
        policy: FetchPolicy,
        min_refetch: Duration,
    ) -> Result<Self, FetchError> {
        policy.check(url)?;
        let keys = parse_jwks(policy.get_json(url, None)?, url)?;
        Ok(KeySet {
            keys: RwLock::new(keys),
            source: Source::Url {
                url: url.to_owned(),
                policy,
                // The fetch at start does not count against the refetch interval: a provider
                // that rotates its key just after cpis started must not be refused until then.
                last_fetch: Mutex::new(None),
                min_refetch,
            },
        })
    }

    /// Keys fetched from `url` on first use (a client registered by URL).
    pub fn lazy_url(url: &str, policy: FetchPolicy) -> Result<Self, FetchError> {
        policy.check(url)?;
        Ok(KeySet {
            keys: RwLock::new(JwkSet { keys: Vec::new() }),
            source: Source::Url {
                url: url.to_owned(),
                policy,
                last_fetch: Mutex::new(None),
                min_refetch: Self::MIN_REFETCH,
            },
        })
    }

    fn cached(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => Some(keys.keys[0].clone()),
            None => None,
        }
    }

    /// The key a token names (or the only key, for a token that names none). An unknown key id
    /// refetches a URL's keys once (rate-limited); still unknown, it is `None`.
    pub fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        let Source::Url {
            url,
            policy,
            last_fetch,
            min_refetch,
        } = &self.source
        else {
            return None;
        };
        {
            let mut last = last_fetch.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < *min_refetch) {
                // Fetched lately (perhaps by another thread while this one waited): what it
                // brought is all there is.
                drop(last);
                return self.cached(kid);
            }
            *last = Some(Instant::now());
            match policy.get_json(url, None).and_then(|v| parse_jwks(v, url)) {
                Ok(fresh) => {
                    tracing::info!(keys = fresh.keys.len(), "identity provider keys refetched");
                    *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "refetching identity provider keys failed"),
            }
        }
        self.cached(kid)
    }

    /// How many keys are cached now.
    pub fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_allowed_loopback_http() {
        let strict = FetchPolicy::default();
        let tests = FetchPolicy {
            allow_http_loopback: true,
        };
        assert!(strict.check("https://idp.example/jwks").is_ok());
        assert!(strict.check("http://127.0.0.1:9/jwks").is_err());
        assert!(tests.check("http://127.0.0.1:9/jwks").is_ok());
        assert!(tests.check("http://[::1]:9/jwks").is_ok());
        assert!(tests.check("http://localhost:9/jwks").is_ok());
        for bad in [
            "http://idp.example/jwks",
            "http://127.0.0.1.attacker.example/jwks",
            "http://127.0.0.1@169.254.169.254/",
            "https://user:pass@idp.example/jwks",
            "file:///etc/passwd",
            "ftp://idp.example/jwks",
            "not a url",
        ] {
            assert!(tests.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_keys_are_found_by_kid_and_never_refetched() {
        let set = KeySet::fixed(
            r#"{"keys":[{"kty":"RSA","kid":"k1","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert!(set.find(Some("k1")).is_some());
        assert!(set.find(None).is_some(), "the only key");
        assert!(set.find(Some("k2")).is_none());
        assert!(KeySet::fixed(r#"{"keys":[]}"#).is_err());
        assert!(KeySet::fixed("nonsense").is_err());
    }
}
