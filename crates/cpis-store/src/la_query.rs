//! What the local authority pages ask of the store: a page of the LA's own records, optionally
//! searched, and its notifications newest first.

use cpis_domain::NhsNumber;

/// How to search an LA's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSearch {
    /// Exactly this NHS number.
    Nhs(NhsNumber),
    /// A substring of the given name, family name, "given family" or local id, ignoring case
    /// (ASCII case everywhere; other letters also when the backend folds them).
    Text(String),
}

/// A page of an LA's records, ordered by family name, given name, then NHS number (names
/// compared by lower-cased bytes, so both backends agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    pub search: Option<RecordSearch>,
    pub offset: u64,
    pub limit: u32,
}

impl RecordSearch {
    /// The text search term as both backends compare it: trimmed and lower-cased.
    pub fn needle(text: &str) -> String {
        text.trim().to_lowercase()
    }
}
