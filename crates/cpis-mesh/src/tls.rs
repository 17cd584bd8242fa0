//! rustls client configuration for mutual TLS (client certificate and trusted roots from PEM).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsOptions;
use crate::error::MeshError;

/// The rustls client configuration for `opts`, or `None` when no option is set (then the HTTP
/// library's default, webpki roots without a client certificate, applies).
pub fn client_config(opts: &TlsOptions) -> Result<Option<Arc<rustls::ClientConfig>>, MeshError> {
    if opts.is_empty() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &opts.ca_cert_pem {
        Some(path) => {
            let certs = read_certs(path)?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(MeshError::Config(format!(
                    "no usable CA certificate in {}",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MeshError::Config(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots);
    let config = match (&opts.client_cert_pem, &opts.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| MeshError::Config(format!("client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| MeshError::Config(format!("client certificate and key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(MeshError::Config(
                "client_cert_pem and client_key_pem must be set together".into(),
            ))
        }
    };
    Ok(Some(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MeshError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| MeshError::Config(format!("certificates {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(MeshError::Config(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_options_use_library_defaults() {
        assert!(client_config(&TlsOptions::default()).unwrap().is_none());
    }

    #[test]
    fn cert_without_key_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TlsOptions {
            client_cert_pem: Some(dir.path().join("missing.pem")),
            ..TlsOptions::default()
        };
        assert!(matches!(client_config(&opts), Err(MeshError::Config(_))));
    }

    #[test]
    fn unreadable_or_empty_pem_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [dir.path().join("missing.pem"), empty] {
            let opts = TlsOptions {
                ca_cert_pem: Some(path),
                ..TlsOptions::default()
            };
            assert!(matches!(client_config(&opts), Err(MeshError::Config(_))));
        }
    }

    #[test]
    fn key_without_cert_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TlsOptions {
            ca_cert_pem: None,
            client_cert_pem: None,
            client_key_pem: Some(dir.path().join("k.pem")),
        };
        assert!(matches!(client_config(&opts), Err(MeshError::Config(_))));
    }
}
