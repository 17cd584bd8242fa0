//! CP-IS records and their plans, read side.

use super::convert::{parse_date, parse_ods, parse_opt_date, parse_ts};
use crate::{StoreError, StoreResult, StoredRecord};
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanType};
use rusqlite::{Connection, Row, Rows};

pub fn records_for(conn: &Connection, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.la_ods, r.local_id, r.given_name, r.family_name, r.date_of_birth, (r.sensitive = 1 OR EXISTS (SELECT 1 FROM demographics d WHERE d.nhs_number = r.nhs_number AND d.sensitive = 1)),
                r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM records r LEFT JOIN plans p ON p.record_id = r.id
         WHERE r.nhs_number = ?1
         ORDER BY r.la_ods, p.plan_type",
    )?;
    let rows = stmt.query([nhs.digits()])?;
    with_plans(rows, |r| Ok((parse_ods(&r.get::<_, String>(0)?)?, nhs)))
}

/// Folds the rows of `records LEFT JOIN plans` into records with their plans. Columns: 0 the
/// record's LA or NHS number (whichever the query does not fix), 1-6 local_id, given_name,
/// family_name, date_of_birth, sensitive, updated_at, 7-10 the plan's plan_type, start_date,
/// end_date, expected_delivery_date (NULL for a record without plans). `identify` gives a row's
/// LA and NHS number; a record's rows must come together.
pub(super) fn with_plans(
    mut rows: Rows<'_>,
    identify: impl Fn(&Row<'_>) -> StoreResult<(OdsCode, NhsNumber)>,
) -> StoreResult<Vec<StoredRecord>> {
    let mut out: Vec<StoredRecord> = Vec::new();
    while let Some(r) = rows.next()? {
        let (la, nhs_number) = identify(r)?;
        if out
            .last()
            .is_none_or(|last| last.la != la || last.nhs_number != nhs_number)
        {
            out.push(StoredRecord {
                la,
                nhs_number,
                local_id: r.get(1)?,
                given_name: r.get(2)?,
                family_name: r.get(3)?,
                date_of_birth: parse_opt_date(r.get(4)?)?,
                sensitive: r.get(5)?,
                plans: Vec::new(),
                updated_at: parse_ts(&r.get::<_, String>(6)?)?,
            });
        }
        let Some(plan_type) = r.get::<_, Option<String>>(7)? else {
            continue;
        };
        let plan_type: PlanType = plan_type
            .parse()
            .map_err(|_| StoreError::corrupt("plan type"))?;
        let plan = Plan::new(
            plan_type,
            parse_date(&r.get::<_, String>(8)?)?,
            parse_opt_date(r.get(9)?)?,
            parse_opt_date(r.get(10)?)?,
        )
        .map_err(StoreError::corrupt)?;
        if let Some(last) = out.last_mut() {
            last.plans.push(plan);
        }
    }
    Ok(out)
}

pub fn la_record_count(conn: &Connection, la: &OdsCode) -> StoreResult<u64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM records WHERE la_ods = ?1")?
        .query_row([la.as_str()], |r| r.get::<_, i64>(0))? as u64)
}
