//! Notifications to local authorities (SPEC 1, 3.3).

use crate::OdsCode;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// Access to Service Notification: a child the LA holds was seen.
    Access,
    /// An NHS number the LA supplied became superseded or inactive.
    InactiveNhsNumber,
    /// The outcome of an upload.
    UploadReport,
}

impl NotificationKind {
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::Access => "access",
            NotificationKind::InactiveNhsNumber => "inactive-nhs-number",
            NotificationKind::UploadReport => "upload-report",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [
            NotificationKind::Access,
            NotificationKind::InactiveNhsNumber,
            NotificationKind::UploadReport,
        ]
        .into_iter()
        .find(|k| k.code() == s)
    }
}

/// A notification as stored in the outbox. The payload is JSON text, fixed when created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Stable id (UUID) receivers de-duplicate on.
    pub id: String,
    /// Position in the LA's own stream (1, 2, 3…); the `after` cursor.
    pub seq: u64,
    pub la: OdsCode,
    pub kind: NotificationKind,
    pub created_at: DateTime<Utc>,
    pub payload: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// A notification about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub id: String,
    pub la: OdsCode,
    pub kind: NotificationKind,
    pub created_at: DateTime<Utc>,
    pub payload: String,
}

/// The result of acknowledging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Acknowledged(DateTime<Utc>),
    /// Already acknowledged earlier (acknowledging is idempotent).
    AlreadyAcknowledged(DateTime<Utc>),
    NotFound,
}
