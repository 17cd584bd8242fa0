//! Identities and access control for cpis (SPEC 4).
//!
//! Callers are authenticated by an [`Authenticator`] (API token, session cookie, or a JWT from the
//! configured identity provider) into a [`Principal`]. A principal's permissions are then turned
//! into *capabilities*: small values that only this crate can make and that the operations in
//! `cpis-core` require as arguments. Code that holds no [`capability::LaUpload`] cannot upload for
//! an LA; the LA it writes for is the one inside the capability, never one from the request.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod authenticator;
pub mod capability;
pub mod cis2;
pub mod client_credentials;
pub mod failure_throttle;
pub mod jwks;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod principal;
pub mod secret;
pub mod users;

pub use authenticator::{AuthFailure, Authenticator, LockoutPolicy, NewSession};
pub use capability::Denied;
pub use principal::{Assurance, AuthMethod, OrgKind, Principal};
