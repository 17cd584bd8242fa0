//! Rows processed by uploads running in this process, for the report endpoint to show while the
//! upload's transaction is still open.

use cpis_domain::report::UploadId;
use cpis_domain::OdsCode;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone)]
pub struct Running {
    pub la: OdsCode,
    pub rows: u64,
    pub phase: &'static str,
}

#[derive(Default)]
pub struct ProgressRegistry(Mutex<HashMap<UploadId, Running>>);

impl ProgressRegistry {
    pub fn start(&self, id: &UploadId, la: &OdsCode) {
        self.lock().insert(
            id.clone(),
            Running {
                la: la.clone(),
                rows: 0,
                phase: "receiving",
            },
        );
    }

    pub fn update(&self, id: &UploadId, phase: &'static str, rows: u64) {
        if let Some(r) = self.lock().get_mut(id) {
            r.phase = phase;
            r.rows = rows;
        }
    }

    pub fn finish(&self, id: &UploadId) {
        self.lock().remove(id);
    }

    /// A running upload, only for its own LA.
    pub fn get(&self, id: &UploadId, la: &OdsCode) -> Option<Running> {
        self.lock().get(id).filter(|r| &r.la == la).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, Running>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
