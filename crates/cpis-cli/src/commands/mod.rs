pub mod audit;
pub mod bench;
pub mod clients;
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
use cpis_store::{IfMissing, Store};
use std::sync::Arc;

/// Opens the database the configuration names (migrating it) and builds the upload engine.
/// `missing` says whether the command may create a SQLite database that does not exist yet.
pub fn open_engine(
    url: &str,
    missing: IfMissing,
    settings: UploadSettings,
) -> Result<UploadEngine> {
    open_engine_with_replica(url, None, missing, settings)
}

/// Opens an existing database for a command that reads or changes it (never creates one).
pub fn open_existing(url: &str) -> Result<Box<dyn Store>> {
    cpis_store::open_existing(url).with_context(|| format!("opening database {}", redact_url(url)))
}

/// As [`open_engine`], sending read-only queries outside transactions to a PostgreSQL read
/// replica when one is named (ignored, with a warning, on SQLite).
pub fn open_engine_with_replica(
    url: &str,
    replica: Option<&str>,
    missing: IfMissing,
    settings: UploadSettings,
) -> Result<UploadEngine> {
    let store: Arc<dyn Store> = Arc::from(
        cpis_store::open_with_replica_as(url, replica, missing).with_context(|| match replica {
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

/// Makes the spool directory for this database (or the configured one) this process's: created
/// mode 0700, leftovers of killed processes swept. Uploads hold personal data; they never spool
/// into the shared temporary directory.
pub fn install_spool_dir(
    url: &str,
    configured: Option<&std::path::Path>,
) -> Result<std::path::PathBuf> {
    let dir = configured.map_or_else(
        || cpis_core::upload::SpoolDir::for_database(url),
        cpis_core::upload::SpoolDir::new,
    );
    let swept = dir
        .install()
        .with_context(|| format!("preparing the spool directory {}", dir.path().display()))?;
    if swept > 0 {
        tracing::info!(files = swept, dir = %dir.path().display(), "removed spool files left by a stopped process");
    }
    Ok(dir.path().to_path_buf())
}

/// The admin capability of the operator running the CLI (recorded in the audit by login name).
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid code"
)]
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
