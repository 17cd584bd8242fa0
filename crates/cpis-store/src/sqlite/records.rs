//! CP-IS records and their plans, read side.

use super::convert::{parse_date, parse_ods, parse_opt_date, parse_ts};
use crate::{StoreError, StoreResult, StoredRecord};
use cpis_domain::{NhsNumber, OdsCode, Plan, PlanType};
use rusqlite::Connection;

pub fn records_for(conn: &Connection, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.la_ods, r.local_id, r.given_name, r.family_name, r.date_of_birth, r.sensitive,
                r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM records r LEFT JOIN plans p ON p.record_id = r.id
         WHERE r.nhs_number = ?1
         ORDER BY r.la_ods, p.plan_type",
    )?;
    let mut rows = stmt.query([nhs.digits()])?;
    let mut out: Vec<StoredRecord> = Vec::new();
    while let Some(r) = rows.next()? {
        let la: String = r.get(0)?;
        let la = parse_ods(&la)?;
        if out.last().is_none_or(|last| last.la != la) {
            out.push(StoredRecord {
                la,
                nhs_number: nhs,
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
