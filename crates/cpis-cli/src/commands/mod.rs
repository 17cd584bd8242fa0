pub mod audit;
pub mod bench;
pub mod lookup;
pub mod reference;
pub mod serve;
pub mod upload;
pub mod users;

use anyhow::{Context, Result};
use cpis_core::{UploadEngine, UploadSettings};
use cpis_domain::SystemClock;
use cpis_store::Store;
use std::sync::Arc;

/// Opens the database the configuration names (migrating it) and builds the upload engine.
pub fn open_engine(url: &str, settings: UploadSettings) -> Result<UploadEngine> {
    let store: Arc<dyn Store> = Arc::from(
        cpis_store::open(url).with_context(|| format!("opening database {}", redact_url(url)))?,
    );
    Ok(UploadEngine::new(store, Arc::new(SystemClock), settings))
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
