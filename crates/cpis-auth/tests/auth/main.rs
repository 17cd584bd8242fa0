//! cpis-auth's integration tests, one binary: CIS2 tokens against a real JWKS endpoint on
//! loopback (`cis2_jwks`) and identity-provider sign-in to local accounts (`oidc_login`).

mod cis2_jwks;
mod oidc_login;
