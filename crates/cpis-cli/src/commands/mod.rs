pub mod audit;
pub mod bench;
pub mod lookup;
pub mod mesh;
pub mod ops;
pub mod reference;
pub mod serve;
pub mod upload;
pub mod users;
pub mod webhooks;

use anyhow::{Context, Result};
use cpis_core::{UploadEngine, UploadSettings};
use cpis_domain::SystemClock;
use cpis_store::Store;
use std::sync::Arc;

/// Opens the database the configuration names (migrating it) and builds the upload engine.
pub fn open_engine(url: &str, settings: UploadSettings) -> Result<UploadEngine> {
    open_engine_with_replica(url, None, settings)
}

/// As [`open_engine`], sending read-only queries outside transactions to a PostgreSQL read
/// replica when one is named (ignored, with a warning, on SQLite).
pub fn open_engine_with_replica(
    url: &str,
    replica: Option<&str>,
    settings: UploadSettings,
) -> Result<UploadEngine> {
    let store: Arc<dyn Store> = Arc::from(
        cpis_store::open_with_replica(url, replica).with_context(|| match replica {
            Some(r) => format!(
                "opening database {} with read replica {}",
                redact_url(url),
                redact_url(r)
            ),
            None => format!("opening database {}", redact_url(url)),
        })?,
    );
    Ok(UploadEngine::new(store, Arc::new(SystemClock), settings))
}

/// The admin capability of the operator running the CLI (recorded in the audit by login name).
pub fn operator_admin() -> cpis_auth::capability::Admin {
    cpis_auth::Principal::local_operator(
        &upload::operator_name(),
        cpis_domain::OdsCode::parse(cpis_core::demo::OPERATIONS_ORG).expect("valid code"),
        "cpis operations",
        cpis_auth::OrgKind::Other,
        cpis_domain::Permissions::new([cpis_domain::Permission::Admin]),
    )
    .admin()
    .expect("an operator with admin holds the admin capability")
}

/// Database URLs may carry passwords; show only the scheme and location.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
