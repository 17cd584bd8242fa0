//! The demographics index (a stand-in for the national PDS): what upload verification checks.

use crate::NhsNumber;
use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "replacement")]
pub enum DemographicStatus {
    Active,
    /// Merged into another number; records must follow it.
    Superseded(NhsNumber),
    Inactive,
}

impl DemographicStatus {
    pub fn code(&self) -> &'static str {
        match self {
            DemographicStatus::Active => "active",
            DemographicStatus::Superseded(_) => "superseded",
            DemographicStatus::Inactive => "inactive",
        }
    }
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demographics {
    pub nhs_number: NhsNumber,
    pub status: DemographicStatus,
    pub date_of_birth: NaiveDate,
    /// S-flag: the person's location must not be disclosed.
    pub sensitive: bool,
}
