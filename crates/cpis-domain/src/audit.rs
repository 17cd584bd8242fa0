//! The audit trail (SPEC 4): who did what to which child, when, from where, and how it ended.
//! Entries are append-only and hash-chained by the store.

use crate::NhsNumber;
use chrono::{DateTime, Utc};
use std::fmt;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Success,
    /// Refused: not authenticated, not permitted, or throttled.
    Denied,
    /// Failed for another reason (bad input, unavailable).
    Failure,
}

impl AuditOutcome {
    pub fn code(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failure => "failure",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [
            AuditOutcome::Success,
            AuditOutcome::Denied,
            AuditOutcome::Failure,
        ]
        .into_iter()
        .find(|o| o.code() == s)
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Who acted: ISO 27789-style participant fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditActor {
    /// User or system id (`anonymous` when authentication failed).
    pub id: String,
    pub name: String,
    /// Organisation ODS code, when known.
    pub organisation: Option<String>,
    /// Role or permissions the actor acted under.
    pub role: String,
}

impl AuditActor {
    pub fn anonymous() -> Self {
        AuditActor {
            id: "anonymous".into(),
            name: "anonymous".into(),
            organisation: None,
            role: String::new(),
        }
    }
}

/// An entry about to be appended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub time: DateTime<Utc>,
    pub actor: AuditActor,
    /// What happened, e.g. `auth.login`, `lookup.unscheduled`, `upload.apply`, `admin.user.add`.
    pub action: String,
    pub subject_nhs: Option<NhsNumber>,
    pub trace_id: Option<String>,
    pub outcome: AuditOutcome,
    /// A short free-text detail (never a secret; may name the child's NHS number only in
    /// `subject_nhs`).
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry for `action` by `actor` at `time`, in the request `trace_id` (`None` only for
    /// work no request started: the CLI, background workers). It succeeded, about no child, with
    /// no detail, until said otherwise.
    pub fn new(
        time: DateTime<Utc>,
        actor: AuditActor,
        action: impl Into<String>,
        trace_id: Option<String>,
    ) -> Self {
        AuditEntry {
            time,
            actor,
            action: action.into(),
            subject_nhs: None,
            trace_id,
            outcome: AuditOutcome::Success,
            detail: None,
        }
    }

    /// A refusal: not authenticated, not permitted, or throttled.
    pub fn denied(self) -> Self {
        self.outcome(AuditOutcome::Denied)
    }

    /// A failure for another reason.
    pub fn failed(self) -> Self {
        self.outcome(AuditOutcome::Failure)
    }

    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The child the entry is about (the only place its NHS number may appear).
    pub fn about(mut self, nhs: impl Into<Option<NhsNumber>>) -> Self {
        self.subject_nhs = nhs.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn detail_opt(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored entry with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub seq: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub hash: String,
}
