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
    /// Invalidated because the child was adopted (SPEC rule 9). Any new number the feed gives is
    /// never kept: records stay where they are and stop showing, so the birth and adoptive
    /// identities are never linked.
    InvalidatedAdoption,
}

impl DemographicStatus {
    pub fn code(&self) -> &'static str {
        match self {
            DemographicStatus::Active => "active",
            DemographicStatus::Superseded(_) => "superseded",
            DemographicStatus::Inactive => "inactive",
            DemographicStatus::InvalidatedAdoption => "invalidated-adoption",
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
    /// A newborn registration's mother (births to mothers on an unborn child protection plan).
    pub mother_nhs_number: Option<NhsNumber>,
}
