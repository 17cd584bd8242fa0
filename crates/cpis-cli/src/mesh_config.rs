//! The `[mesh]` section of the configuration file: cpis's own MESH mailbox and how the MESH
//! worker runs (docs/MESH.md). Secrets may come from `CPIS_MESH_PASSWORD` and
//! `CPIS_MESH_SHARED_KEY` instead of the file.

use anyhow::{Context, Result};
use cpis_core::delivery::RetryPolicy;
use cpis_core::mesh::MeshSettings;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshFileConfig {
    /// The MESH server, e.g. `https://msg.intspineservices.nhs.uk`.
    pub url: String,
    /// cpis's mailbox id.
    pub mailbox_id: String,
    pub password: Option<String>,
    pub shared_key: Option<String>,
    /// Mutual TLS: the mailbox's client certificate and key, and the CA bundle to trust (PEM).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_cert: Option<PathBuf>,
    /// Messages larger than this are sent in chunks [default: 19 MiB].
    pub max_chunk_bytes: Option<usize>,
    /// Per-request timeout [default: 60].
    pub timeout_seconds: Option<u64>,
    /// Seconds between inbox polls [default: 60].
    pub inbox_poll_seconds: Option<u64>,
    /// Milliseconds between passes over the outbox [default: 500].
    pub send_interval_ms: Option<u64>,
    /// Retry, lease and dead-letter rules for outgoing messages.
    pub retry: Option<RetryPolicy>,
}

impl std::fmt::Debug for MeshFileConfig {
    /// Never prints the password or the shared key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshFileConfig")
            .field("url", &self.url)
            .field("mailbox_id", &self.mailbox_id)
            .field("client_cert", &self.client_cert)
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

impl MeshFileConfig {
    pub fn client_config(&self) -> Result<cpis_mesh::MeshConfig> {
        let secret = |env: &str, file: &Option<String>, what: &str| {
            std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| file.clone())
                .with_context(|| format!("[mesh] needs {what} (in the config file or {env})"))
        };
        let mut c = cpis_mesh::MeshConfig::new(
            self.url.trim_end_matches('/'),
            self.mailbox_id.to_ascii_uppercase(),
            secret("CPIS_MESH_PASSWORD", &self.password, "password")?,
            secret("CPIS_MESH_SHARED_KEY", &self.shared_key, "shared_key")?,
        );
        c.tls = cpis_mesh::TlsOptions {
            client_cert_pem: self.client_cert.clone(),
            client_key_pem: self.client_key.clone(),
            ca_cert_pem: self.ca_cert.clone(),
        };
        if let Some(n) = self.max_chunk_bytes {
            anyhow::ensure!(n > 0, "[mesh] max_chunk_bytes must be positive");
            c.max_chunk_bytes = n;
        }
        if let Some(s) = self.timeout_seconds {
            c.timeout = std::time::Duration::from_secs(s.max(1));
        }
        Ok(c)
    }

    pub fn settings(&self) -> MeshSettings {
        let d = MeshSettings::default();
        MeshSettings {
            inbox_poll_seconds: self.inbox_poll_seconds.unwrap_or(d.inbox_poll_seconds),
            send_interval_ms: self.send_interval_ms.unwrap_or(d.send_interval_ms),
            retry: self.retry.unwrap_or(d.retry),
        }
    }
}
