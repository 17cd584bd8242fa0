//! Client settings: where MESH is, who we are, TLS, chunk size, timeouts and retries.

use std::path::PathBuf;
use std::time::Duration;

use crate::retry::Retry;

/// Largest chunk sent by default: 19 MiB, under the MESH API's 20 MB chunk limit for
/// internet-facing mailboxes.
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 19 * 1024 * 1024;

/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach and authenticate to one MESH mailbox.
#[derive(Clone)]
pub struct MeshConfig {
    /// Base URL of the MESH server, without a path: `https://msg.intspineservices.nhs.uk`,
    /// or `http://127.0.0.1:PORT` for a local mesh-sandbox.
    pub url: String,
    /// Our mailbox id (upper case, e.g. `X26OT181`).
    pub mailbox_id: String,
    /// The mailbox password issued with the mailbox.
    pub password: String,
    /// The environment's shared HMAC key for the `NHSMESH` authorization header.
    pub shared_key: String,
    /// Client certificate and trusted roots for mutual TLS.
    pub tls: TlsOptions,
    /// Bodies larger than this are sent in chunks of at most this many bytes (at least 1).
    pub max_chunk_bytes: usize,
    /// Whole-request timeout (connect, send and receive), per attempt.
    pub timeout: Duration,
    /// Retry policy for idempotent calls.
    pub retry: Retry,
    /// `max_results` for inbox pages (MESH accepts 10..=5000); `None` uses the server default
    /// (500). `inbox` follows `links.next` whatever the page size.
    pub inbox_page_size: Option<u32>,
}

impl MeshConfig {
    /// A configuration with defaults: no client certificate, platform (webpki) roots,
    /// 19 MiB chunks, 60 s timeout, [`Retry::default`], server-default inbox pages.
    pub fn new(
        url: impl Into<String>,
        mailbox_id: impl Into<String>,
        password: impl Into<String>,
        shared_key: impl Into<String>,
    ) -> Self {
        MeshConfig {
            url: url.into(),
            mailbox_id: mailbox_id.into(),
            password: password.into(),
            shared_key: shared_key.into(),
            tls: TlsOptions::default(),
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            timeout: DEFAULT_TIMEOUT,
            retry: Retry::default(),
            inbox_page_size: None,
        }
    }
}

impl std::fmt::Debug for MeshConfig {
    /// Never prints the password or the shared key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("url", &self.url)
            .field("mailbox_id", &self.mailbox_id)
            .field("password", &"<redacted>")
            .field("shared_key", &"<redacted>")
            .field("tls", &self.tls)
            .field("max_chunk_bytes", &self.max_chunk_bytes)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("inbox_page_size", &self.inbox_page_size)
            .finish()
    }
}

/// Mutual-TLS settings (all PEM files). With none set, HTTPS uses the webpki root
/// certificates and no client certificate.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Our client certificate (chain), as issued for the mailbox endpoint. Needs `client_key_pem`.
    pub client_cert_pem: Option<PathBuf>,
    /// The private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    pub client_key_pem: Option<PathBuf>,
    /// Root certificates to trust for the server; when set, only these (e.g. the NHS
    /// deployment's CA bundle) are trusted.
    pub ca_cert_pem: Option<PathBuf>,
}

impl TlsOptions {
    /// Whether any option is set (otherwise the HTTP library's default TLS setup is used).
    pub fn is_empty(&self) -> bool {
        self.client_cert_pem.is_none()
            && self.client_key_pem.is_none()
            && self.ca_cert_pem.is_none()
    }
}
