//! Temporary authentication: static API tokens from configuration, each naming either a local
//! authority or a health user at a care setting. (Identities, sessions and JWTs replace this.)
//!
//! The caller's organisation comes only from its token, never from the request. Holding an
//! [`LaCaller`] is the capability to act for that one LA; holding a [`HealthCaller`] is the
//! capability to look up one child at a time, silently or (with `cpis:view-notify`) notifying.

use crate::error::{ApiError, FhirError};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cpis_domain::{Accessor, OdsCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A health user or system and what it may do.
#[derive(Debug, Clone)]
pub struct HealthIdentity {
    pub accessor: Accessor,
    /// Holds `cpis:view-notify` (B0107); without it lookups are silent (`cpis:view-silent`).
    pub may_notify: bool,
}

#[derive(Debug, Clone)]
enum Identity {
    La(OdsCode),
    Health(HealthIdentity),
}

/// Token digests mapped to identities. Only SHA-256 digests are kept in memory, and a presented
/// token is looked up by its digest, so no comparison leaks a token's prefix.
#[derive(Default, Debug)]
pub struct StaticTokens(HashMap<[u8; 32], Identity>);

impl StaticTokens {
    pub fn insert_la(&mut self, token: &str, la: OdsCode) {
        self.0.insert(digest(token), Identity::La(la));
    }

    pub fn insert_health(&mut self, token: &str, identity: HealthIdentity) {
        self.0.insert(digest(token), Identity::Health(identity));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn identity<'a>(parts: &Parts, state: &'a AppState) -> Result<&'a Identity, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated)?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthenticated)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthenticated);
    }
    state
        .tokens
        .0
        .get(&digest(token))
        .ok_or(ApiError::Unauthenticated)
}

/// An authenticated local authority.
#[derive(Debug, Clone)]
pub struct LaCaller {
    pub la: OdsCode,
}

impl FromRequestParts<AppState> for LaCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match identity(parts, state)? {
            Identity::La(la) => Ok(LaCaller { la: la.clone() }),
            Identity::Health(_) => Err(ApiError::Forbidden(
                "this endpoint is for local authorities".into(),
            )),
        }
    }
}

/// An authenticated health user or system (FHIR API).
#[derive(Debug, Clone)]
pub struct HealthCaller(pub HealthIdentity);

impl FromRequestParts<AppState> for HealthCaller {
    type Rejection = FhirError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match identity(parts, state)? {
            Identity::Health(h) => Ok(HealthCaller(h.clone())),
            Identity::La(_) => {
                Err(ApiError::Forbidden("this endpoint is for health users".into()).into())
            }
        }
    }
}
