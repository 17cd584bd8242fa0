//! The LA pages' reads: a page of an LA's own records (searched by NHS number, name or local id)
//! and its notifications newest first. Both are bounded by the LA (`records_by_la`,
//! `notifications_la_cursor`). Names are ordered by bytes (`COLLATE "C"`), as SQLite does.

use super::convert::{big, count, parse_nhs, parse_ods};
use super::pool::Conn;
use super::records::with_plans;
use crate::{RecordQuery, RecordSearch, StoreError, StoreResult, StoredRecord};
use cpis_domain::{Notification, NotificationKind, OdsCode};
use postgres::types::ToSql;

const ORDER: &str = "lower(coalesce(family_name, '')) COLLATE \"C\", \
                     lower(coalesce(given_name, '')) COLLATE \"C\", nhs_number COLLATE \"C\"";

pub fn la_records(
    conn: &mut Conn,
    la: &OdsCode,
    query: &RecordQuery,
) -> StoreResult<Vec<StoredRecord>> {
    let la_text = la.as_str().to_owned();
    let limit = i64::from(query.limit);
    let offset = big(query.offset);
    let term: String;
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&la_text];
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
        "SELECT r.nhs_number, r.local_id, r.given_name, r.family_name, r.date_of_birth, (r.sensitive OR EXISTS (SELECT 1 FROM demographics d WHERE d.nhs_number = r.nhs_number AND d.sensitive)),
                r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM (SELECT * FROM records WHERE la_ods = $1 {filter}
               ORDER BY {ORDER} LIMIT ${l} OFFSET ${o}) r
         LEFT JOIN plans p ON p.record_id = r.id
         ORDER BY lower(coalesce(r.family_name, '')) COLLATE \"C\",
                  lower(coalesce(r.given_name, '')) COLLATE \"C\",
                  r.nhs_number COLLATE \"C\", p.plan_type COLLATE \"C\""
    );
    let rows = conn.query(&sql, &args)?;
    with_plans(&rows, |r| {
        Ok((la.clone(), parse_nhs(r.try_get::<_, &str>(0)?)?))
    })
}

pub fn notifications_newest(
    conn: &mut Conn,
    la: &OdsCode,
    before: Option<u64>,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    let before = before.map_or(i64::MAX, big);
    conn.query(
        "SELECT id, la_seq, la_ods, kind, created_at, payload, acknowledged_at, acknowledged_by
         FROM notifications WHERE la_ods = $1 AND la_seq < $2 ORDER BY la_seq DESC LIMIT $3",
        &[&la.as_str(), &before, &i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        Ok(Notification {
            id: r.try_get(0)?,
            seq: count(r.try_get(1)?),
            la: parse_ods(r.try_get(2)?)?,
            kind: NotificationKind::from_code(r.try_get(3)?)
                .ok_or_else(|| StoreError::corrupt("notification kind"))?,
            created_at: r.try_get(4)?,
            payload: r.try_get(5)?,
            acknowledged_at: r.try_get(6)?,
            acknowledged_by: r.try_get(7)?,
        })
    })
    .collect()
}
