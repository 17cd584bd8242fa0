//! The demographics index: each NHS number's status (current, superseded, invalidated), date of
//! birth and sensitive flag, as the national demographics extract and change feed give them.

use super::directory::COPY_OVER;
use super::{json_list, Db, Row, ToArg};
use crate::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{DemographicStatus, Demographics, NhsNumber};
use std::collections::HashMap;

/// Inside the caller's transaction. Large batches on PostgreSQL go through COPY.
pub fn upsert_demographics(
    db: &mut dyn Db,
    entries: &[Demographics],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    if entries.len() > COPY_OVER {
        if let Some(pg) = db.postgres() {
            crate::postgres::bulk::upsert_demographics(pg, entries, now)?;
            return Ok(entries.len());
        }
    }
    for e in entries {
        db.exec(
            "INSERT INTO demographics (nhs_number, status, superseded_by, date_of_birth, sensitive, updated_at,
                                       mother_nhs_number)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (nhs_number) DO UPDATE SET
                 status = excluded.status, superseded_by = excluded.superseded_by,
                 date_of_birth = excluded.date_of_birth, sensitive = excluded.sensitive,
                 updated_at = excluded.updated_at,
                 mother_nhs_number = coalesce(excluded.mother_nhs_number, demographics.mother_nhs_number)",
            &[
                &e.nhs_number.digits(),
                &e.status.code(),
                &superseded_by(e),
                &e.date_of_birth,
                &e.sensitive,
                &now,
                &e.mother_nhs_number.map(|m| m.digits()),
            ],
        )?;
    }
    Ok(entries.len())
}

pub fn superseded_by(e: &Demographics) -> Option<String> {
    match e.status {
        DemographicStatus::Superseded(n) => Some(n.digits()),
        _ => None,
    }
}

pub(crate) fn demographics_row(nhs: NhsNumber, r: &Row) -> StoreResult<Demographics> {
    let status = match (r.str(0)?, r.opt_str(1)?) {
        ("active", None) => DemographicStatus::Active,
        ("inactive", None) => DemographicStatus::Inactive,
        ("invalidated-adoption", None) => DemographicStatus::InvalidatedAdoption,
        ("superseded", Some(_)) => DemographicStatus::Superseded(r.get(1)?),
        _ => return Err(StoreError::corrupt("demographic status")),
    };
    Ok(Demographics {
        nhs_number: nhs,
        status,
        date_of_birth: r.get(2)?,
        sensitive: r.get(3)?,
        mother_nhs_number: r.get(4)?,
    })
}

pub fn demographics(db: &mut dyn Db, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
    db.find(
        "SELECT status, superseded_by, date_of_birth, sensitive, mother_nhs_number FROM demographics
         WHERE nhs_number = $1",
        &[&nhs.digits()],
        |r| demographics_row(nhs, r),
    )
}

/// Many entries at once, in one statement: `= ANY` on PostgreSQL, a JSON list on SQLite.
pub fn demographics_many(
    db: &mut dyn Db,
    nhs: &[NhsNumber],
) -> StoreResult<HashMap<NhsNumber, Demographics>> {
    let mut out = HashMap::with_capacity(nhs.len());
    let digits: Vec<String> = nhs.iter().map(|n| n.digits()).collect();
    let list;
    let (matching, arg): (&str, &dyn ToArg) = if db.postgres().is_some() {
        ("= ANY($1)", &digits)
    } else {
        list = json_list(&digits)?;
        ("IN (SELECT value FROM json_each($1))", &list)
    };
    let rows = db.rows(
        &format!(
            "SELECT status, superseded_by, date_of_birth, sensitive, mother_nhs_number, nhs_number
             FROM demographics WHERE nhs_number {matching}"
        ),
        &[arg],
    )?;
    for r in rows {
        let n = r.get(5)?;
        out.insert(n, demographics_row(n, &r)?);
    }
    Ok(out)
}
