//! Temporary LA authentication: a static API token per LA from configuration. The caller's LA
//! comes only from the token, never from the request. Holding an [`LaCaller`] is the capability
//! to act for that one LA; handlers that need it take it as an extractor.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cpis_domain::OdsCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Token digests mapped to the LA they speak for. Only SHA-256 digests are kept in memory, and a
/// presented token is looked up by its digest, so no comparison leaks a token's prefix.
#[derive(Default, Debug)]
pub struct LaTokens(HashMap<[u8; 32], OdsCode>);

impl LaTokens {
    pub fn insert(&mut self, token: &str, la: OdsCode) {
        self.0.insert(digest(token), la);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn resolve(&self, token: &str) -> Option<&OdsCode> {
        self.0.get(&digest(token))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?;
        let value = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        let la = state
            .tokens
            .resolve(token)
            .ok_or(ApiError::Unauthenticated)?;
        Ok(LaCaller { la: la.clone() })
    }
}
