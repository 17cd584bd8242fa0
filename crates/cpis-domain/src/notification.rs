//! Notifications to local authorities (SPEC 1, 3.3).

use crate::work_queue::{AckDetails, AckOutcome, Assignee};
use crate::OdsCode;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The acknowledging user's id.
    pub acknowledged_by: Option<String>,
    /// The acknowledging user's display name, as it was then.
    pub acknowledged_by_name: Option<String>,
    pub outcome: Option<AckOutcome>,
    pub note: Option<String>,
    /// The team or worker the item is assigned to.
    pub assigned_to: Option<String>,
    /// The user id, when assigned to a user of the LA ("assigned to me").
    pub assigned_user: Option<String>,
    /// When it was escalated (raised its one `escalation` notification).
    pub escalated_at: Option<DateTime<Utc>>,
}

/// A first acknowledgement as written: who, when, and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: String,
    pub by_name: String,
    pub at: DateTime<Utc>,
    pub details: AckDetails,
}

/// An assignment as written: free text, and the user id when it names a user of the LA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub to: Assignee,
    pub user: Option<String>,
    pub at: DateTime<Utc>,
}

/// A notification about to be written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
