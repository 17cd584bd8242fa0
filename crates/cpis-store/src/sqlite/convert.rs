//! Turning stored text back into domain values. A value that does not parse is reported as
//! corrupt data rather than guessed at.

use crate::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use cpis_domain::{parse_iso_date, NhsNumber, OdsCode};

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::corrupt("timestamp"))
}

pub fn date(d: NaiveDate) -> String {
    // NaiveDate displays as ISO YYYY-MM-DD, without the cost of a format string.
    d.to_string()
}

pub fn parse_date(s: &str) -> StoreResult<NaiveDate> {
    parse_iso_date(s).map_err(|_| StoreError::corrupt("date"))
}

pub fn parse_opt_date(s: Option<String>) -> StoreResult<Option<NaiveDate>> {
    s.as_deref().map(parse_date).transpose()
}

pub fn parse_nhs(s: &str) -> StoreResult<NhsNumber> {
    NhsNumber::parse(s).map_err(|_| StoreError::corrupt("NHS number"))
}

pub fn parse_ods(s: &str) -> StoreResult<OdsCode> {
    OdsCode::parse(s).map_err(|_| StoreError::corrupt("ODS code"))
}
