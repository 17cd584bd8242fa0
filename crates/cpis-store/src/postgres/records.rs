//! CP-IS records and their plans, read side.

use super::convert::{count, parse_ods};
use super::pool::Conn;
use crate::{StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanType};
use postgres::Row;

pub fn records_for(conn: &mut Conn, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
    let rows = conn.query(
        "SELECT r.la_ods, r.local_id, r.given_name, r.family_name, r.date_of_birth, (r.sensitive OR EXISTS (SELECT 1 FROM demographics d WHERE d.nhs_number = r.nhs_number AND d.sensitive)),
                r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM records r LEFT JOIN plans p ON p.record_id = r.id
         WHERE r.nhs_number = $1
         ORDER BY r.la_ods COLLATE \"C\", p.plan_type COLLATE \"C\"",
        &[&nhs.digits()],
    )?;
    with_plans(&rows, |r| Ok((parse_ods(r.try_get::<_, &str>(0)?)?, nhs)))
}

/// Folds the rows of `records LEFT JOIN plans` into records with their plans. Columns: 0 the
/// record's LA or NHS number (whichever the query does not fix), 1-6 local_id, given_name,
/// family_name, date_of_birth, sensitive, updated_at, 7-10 the plan's plan_type, start_date,
/// end_date, expected_delivery_date (NULL for a record without plans). `identify` gives a row's
/// LA and NHS number; a record's rows must come together.
pub(super) fn with_plans(
    rows: &[Row],
    identify: impl Fn(&Row) -> StoreResult<(OdsCode, NhsNumber)>,
) -> StoreResult<Vec<StoredRecord>> {
    let mut out: Vec<StoredRecord> = Vec::new();
    for r in rows {
        let (la, nhs_number) = identify(r)?;
        if out
            .last()
            .is_none_or(|last| last.la != la || last.nhs_number != nhs_number)
        {
            out.push(StoredRecord {
                la,
                nhs_number,
                local_id: r.try_get(1)?,
                given_name: r.try_get(2)?,
                family_name: r.try_get(3)?,
                date_of_birth: r.try_get(4)?,
                sensitive: r.try_get(5)?,
                plans: Vec::new(),
                updated_at: r.try_get::<_, DateTime<Utc>>(6)?,
            });
        }
        let Some(plan_type) = r.try_get::<_, Option<&str>>(7)? else {
            continue;
        };
        let plan_type: PlanType = plan_type
            .parse()
            .map_err(|_| StoreError::corrupt("plan type"))?;
        let plan = Plan::new(
            plan_type,
            r.try_get::<_, NaiveDate>(8)?,
            r.try_get(9)?,
            r.try_get(10)?,
        )
        .map_err(StoreError::corrupt)?;
        if let Some(last) = out.last_mut() {
            last.plans.push(plan);
        }
    }
    Ok(out)
}

pub fn la_record_count(conn: &mut Conn, la: &OdsCode) -> StoreResult<u64> {
    Ok(count(
        conn.query_one(
            "SELECT count(*) FROM records WHERE la_ods = $1",
            &[&la.as_str()],
        )?
        .try_get(0)?,
    ))
}
