//! Directory entries: local authorities (who own records and receive notifications) and care
//! settings (where children are seen).

use crate::{OdsCode, OfficeHours, PhoneNumber};
use std::fmt;
use std::str::FromStr;

/// A local authority's children's social care, as health users are shown it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalAuthority {
    pub ods_code: OdsCode,
    pub name: String,
    pub office_hours_phone: String,
    /// Emergency duty team: mandatory, since children are seen at night and at weekends.
    pub edt_phone: String,
    /// When the office-hours number is answered (UK local time); outside them, the EDT.
    pub office_hours: OfficeHours,
    pub secure_email: Option<String>,
    pub mesh_mailbox: Option<String>,
}

/// Where a health user works, which decides whether a lookup notifies the LA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettingType {
    EmergencyDepartment,
    UrgentTreatmentCentre,
    MinorInjuryUnit,
    WalkInCentre,
    OutOfHoursGp,
    Ambulance,
    Nhs111,
    Maternity,
    PaediatricWard,
    Gp,
    Camhs,
    SchoolNursing,
    HealthVisiting,
    CommunityPaediatrics,
    Dentistry,
    SexualHealth,
    Sarc,
    TerminationOfPregnancy,
}

impl SettingType {
    pub const ALL: [SettingType; 18] = [
        SettingType::EmergencyDepartment,
        SettingType::UrgentTreatmentCentre,
        SettingType::MinorInjuryUnit,
        SettingType::WalkInCentre,
        SettingType::OutOfHoursGp,
        SettingType::Ambulance,
        SettingType::Nhs111,
        SettingType::Maternity,
        SettingType::PaediatricWard,
        SettingType::Gp,
        SettingType::Camhs,
        SettingType::SchoolNursing,
        SettingType::HealthVisiting,
        SettingType::CommunityPaediatrics,
        SettingType::Dentistry,
        SettingType::SexualHealth,
        SettingType::Sarc,
        SettingType::TerminationOfPregnancy,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SettingType::EmergencyDepartment => "emergency-department",
            SettingType::UrgentTreatmentCentre => "urgent-treatment-centre",
            SettingType::MinorInjuryUnit => "minor-injury-unit",
            SettingType::WalkInCentre => "walk-in-centre",
            SettingType::OutOfHoursGp => "out-of-hours-gp",
            SettingType::Ambulance => "ambulance",
            SettingType::Nhs111 => "nhs-111",
            SettingType::Maternity => "maternity",
            SettingType::PaediatricWard => "paediatric-ward",
            SettingType::Gp => "gp",
            SettingType::Camhs => "camhs",
            SettingType::SchoolNursing => "school-nursing",
            SettingType::HealthVisiting => "health-visiting",
            SettingType::CommunityPaediatrics => "community-paediatrics",
            SettingType::Dentistry => "dentistry",
            SettingType::SexualHealth => "sexual-health",
            SettingType::Sarc => "sarc",
            SettingType::TerminationOfPregnancy => "termination-of-pregnancy",
        }
    }

    /// Unscheduled settings notify the LA when they look a child up; scheduled and sensitive
    /// settings (GP, sexual health, SARC…) look up silently.
    pub fn is_unscheduled(self) -> bool {
        matches!(
            self,
            SettingType::EmergencyDepartment
                | SettingType::UrgentTreatmentCentre
                | SettingType::MinorInjuryUnit
                | SettingType::WalkInCentre
                | SettingType::OutOfHoursGp
                | SettingType::Ambulance
                | SettingType::Nhs111
                | SettingType::Maternity
                | SettingType::PaediatricWard
        )
    }

    /// Scheduled settings that see children by appointment report a child on a plan who was not
    /// brought (GP, health visiting, school nursing, community paediatrics, CAMHS, dentistry).
    pub fn reports_was_not_brought(self) -> bool {
        matches!(
            self,
            SettingType::Gp
                | SettingType::HealthVisiting
                | SettingType::SchoolNursing
                | SettingType::CommunityPaediatrics
                | SettingType::Camhs
                | SettingType::Dentistry
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown care setting type")]
pub struct UnknownSettingType;

impl FromStr for SettingType {
    type Err = UnknownSettingType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        SettingType::ALL
            .into_iter()
            .find(|t| t.code().eq_ignore_ascii_case(s))
            .ok_or(UnknownSettingType)
    }
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A health care setting in the directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CareSetting {
    pub ods_code: OdsCode,
    pub name: String,
    pub setting_type: SettingType,
    /// The number an LA rings back (the department's or its safeguarding team's), if listed.
    pub phone: Option<PhoneNumber>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_codes_round_trip_and_split_nine_unscheduled() {
        for t in SettingType::ALL {
            assert_eq!(t.code().parse::<SettingType>(), Ok(t));
        }
        let unscheduled = SettingType::ALL
            .iter()
            .filter(|t| t.is_unscheduled())
            .count();
        assert_eq!(unscheduled, 9);
        assert!(!SettingType::Sarc.is_unscheduled());
        assert!(SettingType::EmergencyDepartment.is_unscheduled());
        let reporting: Vec<_> = SettingType::ALL
            .into_iter()
            .filter(|t| t.reports_was_not_brought())
            .map(SettingType::code)
            .collect();
        assert_eq!(
            reporting,
            [
                "gp",
                "camhs",
                "school-nursing",
                "health-visiting",
                "community-paediatrics",
                "dentistry"
            ]
        );
        assert_eq!("hospital".parse::<SettingType>(), Err(UnknownSettingType));
    }
}
