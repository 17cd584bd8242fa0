//! Random secrets (API tokens, session ids, CSRF tokens) and their stored digests.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of cpis API tokens, so they are recognisable in secret scanners.
pub const TOKEN_PREFIX: &str = "cpis_";

/// 256 random bits, URL-safe base64.
pub fn random() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random())
}

/// What is stored instead of a token or session id.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time comparison of two secrets (CSRF tokens).
pub fn equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
