//! What an upload produced: its summary (status, file outcome, counts) and one result per row.

use crate::outcome::{DetailCode, FileOutcome, RecordOutcome};
use crate::upload::UploadMode;
use crate::{NhsNumber, OdsCode};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// An upload's identifier: a random UUID (hyphenated, lowercase), so ids cannot be guessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct UploadId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upload id must be a UUID")]
pub struct BadUploadId;

impl UploadId {
    pub fn parse(s: &str) -> Result<Self, BadUploadId> {
        let s = s.trim();
        let ok = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if ok {
            Ok(UploadId(s.to_ascii_lowercase()))
        } else {
            Err(BadUploadId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadStatus {
    /// Being read and applied now.
    Processing,
    /// Finished; see the file outcome.
    Completed,
    /// A full upload that would end too many plans: nothing applied until an LA user confirms.
    HeldForConfirmation,
    /// The same file (by file id or content) was already processed; this one changed nothing.
    Duplicate,
}

impl UploadStatus {
    pub fn code(self) -> &'static str {
        match self {
            UploadStatus::Processing => "processing",
            UploadStatus::Completed => "completed",
            UploadStatus::HeldForConfirmation => "held-for-confirmation",
            UploadStatus::Duplicate => "duplicate",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [
            UploadStatus::Processing,
            UploadStatus::Completed,
            UploadStatus::HeldForConfirmation,
            UploadStatus::Duplicate,
        ]
        .into_iter()
        .find(|x| x.code() == s)
    }
}

/// File-level metadata of an upload. The LA comes from the caller's identity, never the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadMeta {
    pub la: OdsCode,
    pub file_id: String,
    pub mode: UploadMode,
    pub file_date: NaiveDate,
    pub format: String,
    /// `api`, `cli`, `web` or `mesh`.
    pub channel: String,
}

/// The counts of an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadCounts {
    pub rows: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub by_outcome: BTreeMap<RecordOutcome, u64>,
    /// Plans ended because a full upload no longer listed them.
    pub plans_ended: u64,
    /// Records (or plans) removed by `delete` rows.
    pub deleted: u64,
}

impl UploadCounts {
    pub fn add(&mut self, outcome: RecordOutcome) {
        self.rows += 1;
        if outcome.is_accepted() {
            self.accepted += 1;
        } else {
            self.rejected += 1;
        }
        *self.by_outcome.entry(outcome).or_default() += 1;
    }
}

/// Everything about an upload except its per-row results.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadSummary {
    pub id: UploadId,
    #[serde(flatten)]
    pub meta: UploadMeta,
    pub content_sha256: String,
    pub status: UploadStatus,
    pub file_outcome: Option<FileOutcome>,
    pub message: Option<String>,
    pub counts: UploadCounts,
    pub received_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// For a duplicate: the upload it repeats.
    pub duplicate_of: Option<UploadId>,
}

impl UploadSummary {
    /// Whether this upload counts for idempotency (a later file with the same id or content is a
    /// replay of it): it applied something, or is held for confirmation. A file that applied
    /// nothing may be corrected and resent under its id.
    pub fn is_effective(&self) -> bool {
        match self.status {
            UploadStatus::HeldForConfirmation => true,
            UploadStatus::Completed => matches!(
                self.file_outcome,
                Some(FileOutcome::AllLoaded | FileOutcome::Partial)
            ),
            UploadStatus::Processing | UploadStatus::Duplicate => false,
        }
    }
}

/// The result for one data row (row 1 is the first line after the header).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowResult {
    pub row: u64,
    /// The NHS number as ten digits when it could be read, else the text as sent (truncated).
    pub nhs_number: String,
    pub outcome: RecordOutcome,
    pub detail: Option<DetailCode>,
    pub message: Option<String>,
    /// For CPR05: the number that replaced the one sent.
    pub new_nhs_number: Option<NhsNumber>,
    /// The LA's local id as the row gave it (trimmed; none when empty), so the LA can find the
    /// row in its own system, whatever its outcome.
    pub local_id: Option<String>,
}
