//! The LA pages' reads: a page of an LA's own records (searched by NHS number, name or local id)
//! and its notifications newest first. Both are bounded by the LA (`records_by_la`,
//! `notifications_la_cursor`).

use super::convert::{parse_nhs, parse_ods, parse_ts};
use super::records::with_plans;
use crate::{RecordQuery, RecordSearch, StoreError, StoreResult, StoredRecord};
use cpis_domain::{Notification, NotificationKind, OdsCode};
use rusqlite::types::Value;
use rusqlite::Connection;

const ORDER: &str = "lower(coalesce(family_name, '')), lower(coalesce(given_name, '')), nhs_number";

pub fn la_records(
    conn: &Connection,
    la: &OdsCode,
    query: &RecordQuery,
) -> StoreResult<Vec<StoredRecord>> {
    let mut args: Vec<Value> = vec![Value::Text(la.as_str().to_owned())];
    let filter = match &query.search {
        None => "",
        Some(RecordSearch::Nhs(nhs)) => {
            args.push(Value::Text(nhs.digits().to_owned()));
            "AND nhs_number = ?2"
        }
        Some(RecordSearch::Text(text)) => {
            args.push(Value::Text(RecordSearch::needle(text)));
            "AND (instr(lower(coalesce(given_name, '') || ' ' || coalesce(family_name, '')), ?2) > 0
                  OR instr(lower(coalesce(family_name, '')), ?2) > 0
                  OR instr(lower(coalesce(local_id, '')), ?2) > 0)"
        }
    };
    args.push(Value::Integer(i64::from(query.limit)));
    args.push(Value::Integer(
        i64::try_from(query.offset).unwrap_or(i64::MAX),
    ));
    let (limit, offset) = (args.len() - 1, args.len());
    let sql = format!(
        "SELECT r.nhs_number, r.local_id, r.given_name, r.family_name, r.date_of_birth, (r.sensitive = 1 OR EXISTS (SELECT 1 FROM demographics d WHERE d.nhs_number = r.nhs_number AND d.sensitive = 1)),
                r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM (SELECT * FROM records WHERE la_ods = ?1 {filter}
               ORDER BY {ORDER} LIMIT ?{limit} OFFSET ?{offset}) r
         LEFT JOIN plans p ON p.record_id = r.id
         ORDER BY lower(coalesce(r.family_name, '')), lower(coalesce(r.given_name, '')),
                  r.nhs_number, p.plan_type"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query(rusqlite::params_from_iter(args))?;
    with_plans(rows, |r| {
        Ok((la.clone(), parse_nhs(&r.get::<_, String>(0)?)?))
    })
}

pub fn notifications_newest(
    conn: &Connection,
    la: &OdsCode,
    before: Option<u64>,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(
        "SELECT id, la_seq, la_ods, kind, created_at, payload, acknowledged_at, acknowledged_by
         FROM notifications WHERE la_ods = ?1 AND la_seq < ?2 ORDER BY la_seq DESC LIMIT ?3",
    )?;
    let mut rows = stmt.query(rusqlite::params![la.as_str(), before, i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let kind: String = r.get(3)?;
        let acked: Option<String> = r.get(6)?;
        out.push(Notification {
            id: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            la: parse_ods(&r.get::<_, String>(2)?)?,
            kind: NotificationKind::from_code(&kind)
                .ok_or_else(|| StoreError::corrupt("notification kind"))?,
            created_at: parse_ts(&r.get::<_, String>(4)?)?,
            payload: r.get(5)?,
            acknowledged_at: acked.as_deref().map(parse_ts).transpose()?,
            acknowledged_by: r.get(7)?,
        });
    }
    Ok(out)
}
