//! Capabilities: what a principal's permissions let it do, as values only this crate can make.
//! Operations take the capability they need as an argument.

use crate::principal::{OrgKind, Principal};
use cpis_domain::{Accessor, AuditActor, OdsCode, Permission, SettingType};

/// Why a capability was refused (→ 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Why an application-only token may not look children up (NHS CP-IS guide: unattended access
/// is not a suitable pattern; a lookup needs the responsible person).
pub const UNATTENDED: &str = "unattended access is not a suitable pattern: a clinical lookup needs a person signed in through NHS CIS2 (this application-restricted client is not registered for unattended lookups)";

/// May look up one child at a time, as this accessor.
#[derive(Debug, Clone)]
pub struct Lookup {
    accessor: Accessor,
    may_notify: bool,
}

impl Lookup {
    pub fn accessor(&self) -> &Accessor {
        &self.accessor
    }
    /// Holds `cpis:view-notify` (else silent only).
    pub fn may_notify(&self) -> bool {
        self.may_notify
    }
}

/// May upload files for this one LA.
#[derive(Debug, Clone)]
pub struct LaUpload {
    la: OdsCode,
    actor: AuditActor,
}

impl LaUpload {
    pub fn la(&self) -> &OdsCode {
        &self.la
    }
    /// Who is uploading, for the audit.
    pub fn actor(&self) -> &AuditActor {
        &self.actor
    }
}

/// May read and acknowledge this one LA's notifications.
#[derive(Debug, Clone)]
pub struct LaNotifications {
    la: OdsCode,
    actor: AuditActor,
}

impl LaNotifications {
    pub fn la(&self) -> &OdsCode {
        &self.la
    }
    pub fn actor(&self) -> &AuditActor {
        &self.actor
    }
}

/// May report that a child was not brought to an appointment, as this accessor at a scheduled
/// care setting (docs/WORKFLOW.md, "Was not brought").
#[derive(Debug, Clone)]
pub struct ReportWasNotBrought {
    accessor: Accessor,
    setting_type: SettingType,
}

impl ReportWasNotBrought {
    pub fn accessor(&self) -> &Accessor {
        &self.accessor
    }
    /// The reporting setting's type (always one that [`SettingType::reports_was_not_brought`]).
    pub fn setting_type(&self) -> SettingType {
        self.setting_type
    }
}

/// May read the full access history of this one LA's children (the evidence export).
#[derive(Debug, Clone)]
pub struct LaEvidence {
    la: OdsCode,
    actor: AuditActor,
}

impl LaEvidence {
    pub fn la(&self) -> &OdsCode {
        &self.la
    }
    pub fn actor(&self) -> &AuditActor {
        &self.actor
    }
}

/// May administer directories and users.
#[derive(Debug, Clone)]
pub struct Admin {
    actor: AuditActor,
}

impl Admin {
    pub fn actor(&self) -> &AuditActor {
        &self.actor
    }
}

/// May search and verify the audit trail.
#[derive(Debug, Clone)]
pub struct Auditor {
    actor: String,
    audit_actor: AuditActor,
}

impl Auditor {
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// Who is searching, for the audit (searching the audit trail is itself audited).
    pub fn audit_actor(&self) -> &AuditActor {
        &self.audit_actor
    }
}

impl Principal {
    /// Health users and systems at a care setting, with `cpis:view-notify` or `cpis:view-silent`.
    pub fn lookup(&self) -> Result<Lookup, Denied> {
        let notify = self.has(Permission::ViewNotify);
        if !notify && !self.has(Permission::ViewSilent) {
            return Err(Denied(
                "looking children up needs cpis:view-notify or cpis:view-silent".into(),
            ));
        }
        if self.method == crate::AuthMethod::ClientCredentials && !self.unattended_lookups {
            return Err(Denied(UNATTENDED.into()));
        }
        if let Some(a) = self.assurance {
            if a.level < a.required_for_lookups {
                return Err(Denied(format!(
                    "looking children up needs assurance level {}; this sign-in has {}",
                    a.required_for_lookups, a.level
                )));
            }
        }
        let setting_type = match &self.org_kind {
            OrgKind::CareSetting(t) => Some(*t),
            // Operators (CLI) may look up silently; other organisations may not look up at all.
            OrgKind::Other if self.method == crate::AuthMethod::Operator => None,
            _ => return Err(Denied("looking children up is for care settings".into())),
        };
        Ok(Lookup {
            accessor: Accessor {
                user_id: self.user_id.clone(),
                user_name: self.display_name.clone(),
                role: self.role.clone(),
                organisation: self.organisation.clone(),
                organisation_name: self.organisation_name.clone(),
                setting_type,
                nhs: self.nhs.clone(),
                organisation_phone: self.organisation_phone.clone(),
                contact: self.contact.clone(),
            },
            may_notify: notify,
        })
    }

    /// People and systems who may look children up ([`Principal::lookup`]) at a scheduled care
    /// setting that sees children by appointment: a report tells the LA no more than a lookup
    /// would let the reporter see.
    pub fn report_was_not_brought(&self) -> Result<ReportWasNotBrought, Denied> {
        let lookup = self.lookup()?;
        match lookup.accessor.setting_type {
            Some(t) if t.reports_was_not_brought() => Ok(ReportWasNotBrought {
                accessor: lookup.accessor,
                setting_type: t,
            }),
            _ => Err(Denied(
                "reporting a child not brought to an appointment is for GP, health visiting, school nursing, community paediatrics, CAMHS and dentistry settings".into(),
            )),
        }
    }

    /// LA users who read the LA's notifications (every access to its children reaches them
    /// already) may export a child's whole access history.
    pub fn la_evidence(&self) -> Result<LaEvidence, Denied> {
        if !self.has(Permission::LaNotifications) {
            return Err(Denied(
                "exporting a child's access history needs la:notifications".into(),
            ));
        }
        Ok(LaEvidence {
            la: self.own_la()?,
            actor: self.audit_actor(),
        })
    }

    fn own_la(&self) -> Result<OdsCode, Denied> {
        match self.org_kind {
            OrgKind::LocalAuthority => Ok(self.organisation.clone()),
            _ => Err(Denied("this is for local authorities".into())),
        }
    }

    pub fn la_upload(&self) -> Result<LaUpload, Denied> {
        if !self.has(Permission::LaUpload) {
            return Err(Denied("uploading needs la:upload".into()));
        }
        Ok(LaUpload {
            la: self.own_la()?,
            actor: self.audit_actor(),
        })
    }

    pub fn la_notifications(&self) -> Result<LaNotifications, Denied> {
        if !self.has(Permission::LaNotifications) {
            return Err(Denied("notifications need la:notifications".into()));
        }
        Ok(LaNotifications {
            la: self.own_la()?,
            actor: self.audit_actor(),
        })
    }

    pub fn admin(&self) -> Result<Admin, Denied> {
        if !self.has(Permission::Admin) {
            return Err(Denied("this needs admin".into()));
        }
        Ok(Admin {
            actor: self.audit_actor(),
        })
    }

    pub fn auditor(&self) -> Result<Auditor, Denied> {
        if !self.has(Permission::Auditor) {
            return Err(Denied("this needs auditor".into()));
        }
        Ok(Auditor {
            actor: self.user_id.clone(),
            audit_actor: self.audit_actor(),
        })
    }
}
