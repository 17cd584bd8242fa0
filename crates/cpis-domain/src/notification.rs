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
    /// Work-queue items the LA left unacknowledged past the escalation deadline (docs/WORKFLOW.md).
    Escalation,
    /// A scheduled care setting reports a child on a plan was not brought to an appointment.
    WasNotBrought,
    /// A baby was registered to a mother on an unborn child protection plan.
    Birth,
    /// A linked baby's expected delivery date passed with no plan uploaded for it.
    BirthReminder,
    /// An NHS number the LA holds was invalidated for adoption (records do not move).
    AdoptionInvalidation,
}

impl NotificationKind {
    pub fn code(self) -> &'static str {
        match self {
            NotificationKind::Access => "access",
            NotificationKind::InactiveNhsNumber => "inactive-nhs-number",
            NotificationKind::UploadReport => "upload-report",
            NotificationKind::Escalation => "escalation",
            NotificationKind::WasNotBrought => "was-not-brought",
            NotificationKind::Birth => "birth",
            NotificationKind::BirthReminder => "birth-reminder",
            NotificationKind::AdoptionInvalidation => "adoption-invalidation",
        }
    }
    pub const ALL: [NotificationKind; 8] = [
        NotificationKind::Access,
        NotificationKind::InactiveNhsNumber,
        NotificationKind::UploadReport,
        NotificationKind::Escalation,
        NotificationKind::WasNotBrought,
        NotificationKind::Birth,
        NotificationKind::BirthReminder,
        NotificationKind::AdoptionInvalidation,
    ];

    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == s)
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
