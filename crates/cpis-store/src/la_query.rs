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

/// Which of an LA's notifications a work-queue page shows. Every filter is optional; all given
/// must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    /// Only notifications not yet acknowledged.
    pub unacknowledged: bool,
    /// Only those assigned to this user id.
    pub assigned_user: Option<String>,
    /// Only those about this child (NHS number digits).
    pub nhs_number: Option<String>,
    /// Only lookups by this setting (ODS code).
    pub setting: Option<String>,
    pub kind: Option<cpis_domain::NotificationKind>,
    /// Created at or after.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// How a page of notifications is ordered and paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOrder {
    /// After a cursor, oldest first (the API's streaming order).
    After(u64),
    /// The work queue (web inbox): overdue first (actionable, unacknowledged and created before
    /// `overdue_before`), then frequent-attendance items, then newest; paged by offset.
    Queue {
        overdue_before: chrono::DateTime<chrono::Utc>,
        offset: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationQuery {
    pub filter: NotificationFilter,
    pub order: NotificationOrder,
    pub limit: u32,
}
