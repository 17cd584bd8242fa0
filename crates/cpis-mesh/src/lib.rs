//! MESH (NHS Message Exchange for Social Care and Health) API v2 client.
//!
//! A pure protocol client for one mailbox: handshake, inbox listing with paging, chunked
//! download and upload, acknowledgement and tracking, with `NHSMESH` HMAC authorization,
//! mutual TLS, and retries for idempotent calls. It knows nothing about cpis's own message
//! formats. See docs/MESH.md ("Client").
//!
//! With the `sandbox` feature, [`sandbox::Sandbox`] runs NHS England's mesh-sandbox for tests.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]
#![warn(missing_docs)]

pub mod auth;
pub mod chunks;
mod client;
mod config;
mod error;
pub mod headers;
mod message;
mod retry;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod tls;

pub use client::MeshClient;
pub use config::{MeshConfig, TlsOptions, DEFAULT_MAX_CHUNK_BYTES, DEFAULT_TIMEOUT};
pub use error::MeshError;
pub use message::{InboundMessage, InboxPage, OutboundMessage, Tracked};
pub use retry::Retry;
pub use tls::client_config as tls_client_config;
