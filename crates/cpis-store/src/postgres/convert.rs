//! Between domain values and PostgreSQL column values. Timestamps are cut to whole microseconds
//! before they are written (what `timestamptz` holds, and what the SQLite text keeps), so a value
//! reads back exactly as the other backend would return it. Stored text that does not parse is
//! reported as corrupt data rather than guessed at.

use crate::{StoreError, StoreResult};
use chrono::{DateTime, SubsecRound, Utc};
use cpis_domain::{NhsNumber, OdsCode};

pub fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub fn parse_nhs(s: &str) -> StoreResult<NhsNumber> {
    NhsNumber::parse(s).map_err(|_| StoreError::corrupt("NHS number"))
}

pub fn parse_ods(s: &str) -> StoreResult<OdsCode> {
    OdsCode::parse(s).map_err(|_| StoreError::corrupt("ODS code"))
}

/// A stored count or sequence number (never negative).
pub fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// A caller's count or cursor as a `bigint` (saturating).
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
