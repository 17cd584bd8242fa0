//! CP-IS records and their plans: the read side, the LA records page, records following a
//! superseded NHS number, and retention purging. Names order by bytes (`COLLATE "C"` on
//! PostgreSQL, SQLite's default), so both backends agree.

use super::{big, Db, Row, ToArg};
use crate::{RecordQuery, RecordSearch, StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, Utc};
use cpis_domain::{AuditEntry, NhsNumber, OdsCode, Plan};
use std::collections::HashMap;

/// A record's columns (from `r`, with its current sensitivity) and its plan's (from `p`).
const RECORD_COLUMNS: &str = "r.local_id, r.given_name, r.family_name, r.date_of_birth,
    (r.sensitive OR EXISTS (SELECT 1 FROM demographics d WHERE d.nhs_number = r.nhs_number AND d.sensitive)),
    r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date";

/// Whether record `r` shows to health: its number was not invalidated for adoption.
const SHOWN: &str = "NOT EXISTS (SELECT 1 FROM demographics d
                     WHERE d.nhs_number = r.nhs_number AND d.status = 'invalidated-adoption')";

/// What health sees: the records held for this number, none when the number was invalidated for
/// adoption (evaluated now, so the plans stop showing the moment the feed says so).
pub fn records_for(db: &mut dyn Db, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
    records_where(db, nhs, &format!("AND {SHOWN}"))
}

/// [`records_for`] of each of `children` (PostgreSQL only), by child; a child without records is
/// absent. Each child is read through its own index walk (a lateral subquery kept apart by
/// `OFFSET 0`): over a bound array the planner's one generic plan otherwise scanned `records`,
/// `plans` and the sensitive demographics whole (measured: 1.3 ms against 0.26 ms for one child
/// on the demo data, and growing with the tables).
pub fn records_for_many(
    db: &mut dyn Db,
    children: &[String],
) -> StoreResult<HashMap<NhsNumber, Vec<StoredRecord>>> {
    let rows = db.rows(
        &format!(
            "SELECT x.* FROM unnest($1::text[]) AS c(nhs) CROSS JOIN LATERAL (
                 SELECT r.la_ods, {RECORD_COLUMNS}, r.nhs_number
                 FROM records r LEFT JOIN plans p ON p.record_id = r.id
                 WHERE r.nhs_number = c.nhs AND {SHOWN}
                 OFFSET 0
             ) x
             ORDER BY x.nhs_number, x.la_ods COLLATE \"C\", x.plan_type COLLATE \"C\""
        ),
        &[&children.to_vec()],
    )?;
    let mut out: HashMap<NhsNumber, Vec<StoredRecord>> = HashMap::new();
    for record in with_plans(&rows, |r| Ok((r.get(0)?, r.get(11)?)))? {
        out.entry(record.nhs_number).or_default().push(record);
    }
    Ok(out)
}

/// Every record held for this number, whatever its demographic status.
pub fn records_held(db: &mut dyn Db, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
    records_where(db, nhs, "")
}

fn records_where(db: &mut dyn Db, nhs: NhsNumber, and: &str) -> StoreResult<Vec<StoredRecord>> {
    let rows = db.rows(
        &format!(
            "SELECT r.la_ods, {RECORD_COLUMNS}
             FROM records r LEFT JOIN plans p ON p.record_id = r.id
             WHERE r.nhs_number = $1 {and}
             ORDER BY r.la_ods COLLATE \"C\", p.plan_type COLLATE \"C\""
        ),
        &[&nhs.digits()],
    )?;
    with_plans(&rows, |r| Ok((r.get(0)?, nhs)))
}

fn plan_from(r: &Row, at: usize) -> StoreResult<Plan> {
    Plan::new(r.get(at)?, r.get(at + 1)?, r.get(at + 2)?, r.get(at + 3)?)
        .map_err(StoreError::corrupt)
}

/// Folds the rows of `records LEFT JOIN plans` into records with their plans. Columns: 0 the
/// record's LA or NHS number (whichever the query does not fix), then [`RECORD_COLUMNS`].
/// `identify` gives a row's LA and NHS number; a record's rows must come together.
fn with_plans(
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
                local_id: r.get(1)?,
                given_name: r.get(2)?,
                family_name: r.get(3)?,
                date_of_birth: r.get(4)?,
                sensitive: r.get(5)?,
                plans: Vec::new(),
                updated_at: r.get::<DateTime<Utc>>(6)?,
            });
        }
        if r.opt_str(7)?.is_none() {
            continue;
        }
        let plan = plan_from(r, 7)?;
        if let Some(last) = out.last_mut() {
            last.plans.push(plan);
        }
    }
    Ok(out)
}

pub fn la_record_count(db: &mut dyn Db, la: &OdsCode) -> StoreResult<u64> {
    db.count(
        "SELECT count(*) FROM records WHERE la_ods = $1",
        &[&la.as_str()],
    )
}

const NAME_ORDER: &str = "lower(coalesce(family_name, '')) COLLATE \"C\", \
                          lower(coalesce(given_name, '')) COLLATE \"C\", nhs_number COLLATE \"C\"";

/// A page of the LA's own records, searched by NHS number, name or local id (bounded by the LA:
/// `records_by_la`).
pub fn la_records(
    db: &mut dyn Db,
    la: &OdsCode,
    query: &RecordQuery,
) -> StoreResult<Vec<StoredRecord>> {
    let limit = i64::from(query.limit);
    let offset = big(query.offset);
    let la_text = la.as_str();
    let term: String;
    let mut args: Vec<&dyn ToArg> = vec![&la_text];
    let filter = match &query.search {
        None => "",
        Some(RecordSearch::Nhs(nhs)) => {
            term = nhs.digits().to_owned();
            args.push(&term);
            "AND nhs_number = $2"
        }
        Some(RecordSearch::Text(text)) => {
            term = RecordSearch::needle(text);
            args.push(&term);
            "AND (strpos(lower(coalesce(given_name, '') || ' ' || coalesce(family_name, '')), $2) > 0
                  OR strpos(lower(coalesce(family_name, '')), $2) > 0
                  OR strpos(lower(coalesce(local_id, '')), $2) > 0)"
        }
    };
    args.push(&limit);
    args.push(&offset);
    let (l, o) = (args.len() - 1, args.len());
    let sql = format!(
        "SELECT r.nhs_number, {RECORD_COLUMNS}
         FROM (SELECT * FROM records WHERE la_ods = $1 {filter}
               ORDER BY {NAME_ORDER} LIMIT ${l} OFFSET ${o}) r
         LEFT JOIN plans p ON p.record_id = r.id
         ORDER BY {NAME_ORDER}, p.plan_type COLLATE \"C\""
    );
    let rows = db.rows(&sql, &args)?;
    with_plans(&rows, |r| Ok((la.clone(), r.get(0)?)))
}

/// Moves every record held against `from` to `to`, merging into a record the LA already holds
/// for `to` (the plans it lacks move across, the old record goes). Inside the caller's
/// transaction; returns the LAs whose records moved.
pub fn move_records(
    db: &mut dyn Db,
    from: NhsNumber,
    to: NhsNumber,
    now: DateTime<Utc>,
) -> StoreResult<Vec<OdsCode>> {
    let rows = db.rows(
        "SELECT r.id, r.la_ods, t.id FROM records r
         LEFT JOIN records t ON t.nhs_number = $2 AND t.la_ods = r.la_ods
         WHERE r.nhs_number = $1 ORDER BY r.la_ods COLLATE \"C\" FOR UPDATE OF r",
        &[&from.digits(), &to.digits()],
    )?;
    let mut moved = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.get(0)?;
        match row.get::<Option<i64>>(2)? {
            None => {
                db.exec(
                    "UPDATE records SET nhs_number = $2, updated_at = $3 WHERE id = $1",
                    &[&id, &to.digits(), &now],
                )?;
            }
            Some(t) => {
                db.exec(
                    "UPDATE plans SET record_id = $2 WHERE record_id = $1
                     AND plan_type NOT IN (SELECT plan_type FROM plans WHERE record_id = $2)",
                    &[&id, &t],
                )?;
                // A mark on the merged-away record is never dropped: the record kept is
                // marked, and so are its plans (a record is marked while a plan is).
                db.exec(
                    "UPDATE plans SET sensitive = true WHERE record_id = $2
                     AND EXISTS (SELECT 1 FROM records WHERE id = $1 AND sensitive)",
                    &[&id, &t],
                )?;
                db.exec(
                    "UPDATE records SET sensitive = true WHERE id = $2
                     AND EXISTS (SELECT 1 FROM records WHERE id = $1 AND sensitive)",
                    &[&id, &t],
                )?;
                db.exec("DELETE FROM records WHERE id = $1", &[&id])?;
                db.exec(
                    "UPDATE records SET updated_at = $2 WHERE id = $1",
                    &[&t, &now],
                )?;
            }
        }
        moved.push(row.get(1)?);
    }
    Ok(moved)
}

/// Every plan that can leave its visibility window (ended plans and UCPPs).
pub fn purgeable_plans(db: &mut dyn Db) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>> {
    db.list(
        "SELECT r.la_ods, r.nhs_number, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM plans p JOIN records r ON r.id = p.record_id
         WHERE p.end_date IS NOT NULL OR p.plan_type = 'UCPP'",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, plan_from(r, 2)?)),
    )
}

/// Deletes the plans still exactly as listed, then records left with no plan, and appends the
/// audit entry; inside the caller's transaction.
pub fn purge(
    db: &mut dyn Db,
    plans: &[(OdsCode, NhsNumber, Plan)],
    audit: &AuditEntry,
) -> StoreResult<(u64, u64)> {
    let mut deleted_plans = 0u64;
    let mut deleted_records = 0u64;
    for (la, nhs, plan) in plans {
        // Only if unchanged since it was listed: a plan an upload reopened is kept.
        deleted_plans += db.exec(
            "DELETE FROM plans WHERE plan_type = $3 AND start_date = $4
               AND end_date IS NOT DISTINCT FROM $5 AND expected_delivery_date IS NOT DISTINCT FROM $6
               AND record_id = (SELECT id FROM records WHERE nhs_number = $1 AND la_ods = $2)",
            &[
                &nhs.digits(),
                &la.as_str(),
                &plan.plan_type().code(),
                &plan.start(),
                &plan.end(),
                &plan.expected_delivery(),
            ],
        )?;
        deleted_records += db.exec(
            "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2
             AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
            &[&nhs.digits(), &la.as_str()],
        )?;
    }
    let mut entry = audit.clone();
    entry.detail = Some(format!(
        "{}; deleted {deleted_plans} plans and {deleted_records} records",
        audit.detail.as_deref().unwrap_or("retention purge")
    ));
    super::audit::append_alone(db, &entry)?;
    Ok((deleted_plans, deleted_records))
}
