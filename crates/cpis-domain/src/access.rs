//! Accesses: a health user or system looked a child up (SPEC 1, rules 3 and 4).

use crate::{NhsNumber, OdsCode, PhoneNumber, SettingType, WorkContact};
use chrono::{DateTime, Utc};

/// Who looked a child up, as the audit and the LA see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accessor {
    pub user_id: String,
    pub user_name: String,
    pub role: String,
    pub organisation: OdsCode,
    pub organisation_name: String,
    /// `None` for operators and systems that are not a care setting (always silent).
    pub setting_type: Option<SettingType>,
    /// The person's NHS identity when they signed in through NHS CIS2 (all `None` for local
    /// accounts, API tokens and systems).
    pub nhs: NhsIdentity,
    /// The care setting's contact number from the directory (`None` when it has none, or for
    /// operators and systems). Carried to the LA in the access notification; not kept in the
    /// access log (read back as `None`).
    pub organisation_phone: Option<PhoneNumber>,
    /// The person's work contact, where their identity provider gives it. Carried to the LA in
    /// the access notification; not kept in the access log (read back empty).
    pub contact: WorkContact,
}

/// A person's national identity, as NHS CIS2 asserts it: who they are in the Spine Directory
/// Service and which of their roles they selected for this session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NhsIdentity {
    /// The SDS user id (the CIS2 `sub`/`uid`, a 12-digit UUID).
    pub sds_user_id: Option<String>,
    /// The selected role's SDS role profile id (`selected_roleid`, `person_roleid`).
    pub role_profile_id: Option<String>,
    /// The selected role's national job role code, e.g. `R8000` (clinical practitioner access role).
    pub role_code: Option<String>,
}

impl NhsIdentity {
    /// Whether nothing is known (a local account, an API token, a system).
    pub fn is_empty(&self) -> bool {
        self.sds_user_id.is_none() && self.role_profile_id.is_none() && self.role_code.is_none()
    }
}

/// What kind of lookup an access was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessKind {
    /// Found a visible plan and notified the LA(s); shown in the access history.
    Unscheduled,
    /// Found a visible plan, notified nobody; audit only, never in the history.
    Silent,
    /// Found nothing visible; audit only.
    Miss,
}

impl AccessKind {
    pub fn code(self) -> &'static str {
        match self {
            AccessKind::Unscheduled => "unscheduled",
            AccessKind::Silent => "silent",
            AccessKind::Miss => "miss",
        }
    }
    pub fn from_code(s: &str) -> Option<Self> {
        [
            AccessKind::Unscheduled,
            AccessKind::Silent,
            AccessKind::Miss,
        ]
        .into_iter()
        .find(|k| k.code() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    /// Stable, unguessable id (UUID).
    pub id: String,
    pub time: DateTime<Utc>,
    pub nhs_number: NhsNumber,
    pub accessor: Accessor,
    pub kind: AccessKind,
    pub trace_id: Option<String>,
}

/// Whether a lookup may notify: the caller asked for an unscheduled (notifying) lookup, holds the
/// notifying permission, and works at an unscheduled care setting. Anything less is silent.
pub fn is_notifying(
    requested_unscheduled: bool,
    may_notify: bool,
    setting: Option<SettingType>,
) -> bool {
    requested_unscheduled && may_notify && setting.is_some_and(SettingType::is_unscheduled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unscheduled_settings_with_permission_and_request_notify() {
        let ed = Some(SettingType::EmergencyDepartment);
        assert!(is_notifying(true, true, ed));
        assert!(!is_notifying(false, true, ed));
        assert!(!is_notifying(true, false, ed));
        assert!(!is_notifying(true, true, Some(SettingType::Gp)));
        assert!(!is_notifying(true, true, Some(SettingType::Sarc)));
        assert!(!is_notifying(true, true, None));
    }
}
