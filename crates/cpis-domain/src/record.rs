//! A CP-IS record: one per (NHS number, submitting LA).

use crate::{NhsNumber, OdsCode, Plan};
use chrono::{DateTime, NaiveDate, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub la: OdsCode,
    pub nhs_number: NhsNumber,
    pub local_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    /// S-flagged or marked sensitive by the LA: access history hides where the child was seen.
    pub sensitive: bool,
    pub plans: Vec<Plan>,
    pub updated_at: DateTime<Utc>,
}
