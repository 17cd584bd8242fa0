//! Values the store hands back or takes that are not domain types of their own.

use chrono::{DateTime, Utc};
use cpis_domain::report::{UploadId, UploadMeta};
use cpis_domain::RecordOutcome;

/// A CP-IS record as stored (the domain's [`Record`]).
pub type StoredRecord = cpis_domain::Record;

/// An upload about to be processed.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: UploadId,
    pub meta: UploadMeta,
    pub content_sha256: String,
    pub received_at: DateTime<Utc>,
}

/// Which row results to read, in row order.
#[derive(Debug, Clone)]
pub struct RowFilter {
    pub after_row: u64,
    pub limit: u32,
    pub outcome: Option<RecordOutcome>,
}

impl Default for RowFilter {
    fn default() -> Self {
        RowFilter {
            after_row: 0,
            limit: u32::MAX,
            outcome: None,
        }
    }
}

/// Sizes of the main tables, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    pub local_authorities: u64,
    pub care_settings: u64,
    pub demographics: u64,
    pub records: u64,
    pub plans: u64,
    pub uploads: u64,
    pub accesses: u64,
    pub notifications: u64,
}
