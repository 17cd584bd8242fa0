//! A lookup group's writes on PostgreSQL, sent at its commit in two statements (the accesses,
//! audit entries and audit head; the notifications and their deliveries): the values go as
//! arrays and `unnest` turns them back into rows, so a group of lookups costs a few round trips
//! instead of four or five per lookup (the access, its audit entry, each notification and its
//! deliveries). SQLite, in-process, writes each row as the lookup makes it.
//! The other transactions that append notifications or audit entries through the same calls (a
//! demographics change file, an upload, a was-not-brought report) write them the same way at
//! their commit; none of them reads those back before it.
//!
//! Rows go in the order the lookups made them (`WITH ORDINALITY ... ORDER BY ord`), so `seq`s
//! follow that order as they did row by row; an LA's `la_seq`s are drawn under the notification
//! lock, consecutively after the LA's last one, in the same order.

use super::pool::Conn;
use crate::sql::audit::Link;
use crate::StoreResult;
use chrono::{DateTime, SubsecRound, Utc};
use cpis_domain::work_queue::PayloadKeys;
use cpis_domain::{Access, AuditEntry, NewNotification};
use postgres::types::ToSql;

/// What a lookup group wrote, waiting for its commit.
#[derive(Default)]
pub struct LookupWrites {
    pub accesses: Vec<Access>,
    pub audit: Vec<(Link, AuditEntry)>,
    pub notifications: Vec<NewNotification>,
}

impl LookupWrites {
    pub fn is_empty(&self) -> bool {
        self.accesses.is_empty() && self.audit.is_empty() && self.notifications.is_empty()
    }
}

/// Stored to the microsecond, as a single row's binding stores it.
fn micros(t: &DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn execute(conn: &mut Conn, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
    let st = conn.statement(sql)?;
    Ok(conn.client().execute(&st, params)?)
}

/// The chain head the transaction ends at, written with the group's audit entries.
pub struct HeadAfter<'a> {
    pub seq: i64,
    pub hash: &'a str,
}

/// Writes the group in two statements (three round trips fewer than a statement per table and
/// one each for the notification lock and the audit head): the accesses, the audit entries, the
/// audit head the transaction ends at (`head`, when it appended any) and, when there are
/// notifications and `lock_notify`, the notification lock, in one; then the notifications and
/// their deliveries, under that lock, in the other (statements run in order; the parts of one
/// statement need not).
pub fn write(
    conn: &mut Conn,
    w: &LookupWrites,
    head: Option<HeadAfter<'_>>,
    lock_notify: bool,
) -> StoreResult<()> {
    let lock = lock_notify && !w.notifications.is_empty();
    if !w.accesses.is_empty() || !w.audit.is_empty() || head.is_some() || lock {
        accesses_and_audit(conn, w, head, lock)?;
    }
    if !w.notifications.is_empty() {
        notifications(conn, &w.notifications)?;
    }
    Ok(())
}

/// One statement: the accesses and audit entries (none, when their arrays are empty), the head
/// row when `head` is given, and the notification lock when `lock`.
fn accesses_and_audit(
    conn: &mut Conn,
    w: &LookupWrites,
    head: Option<HeadAfter<'_>>,
    lock: bool,
) -> StoreResult<()> {
    let rows = &w.accesses;
    let col = |f: fn(&Access) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let ids = col(|a| Some(a.id.clone()));
    let times: Vec<DateTime<Utc>> = rows.iter().map(|a| micros(&a.time)).collect();
    let nhs = col(|a| Some(a.nhs_number.digits()));
    let kinds = col(|a| Some(a.kind.code().to_owned()));
    let user_ids = col(|a| Some(a.accessor.user_id.clone()));
    let user_names = col(|a| Some(a.accessor.user_name.clone()));
    let roles = col(|a| Some(a.accessor.role.clone()));
    let orgs = col(|a| Some(a.accessor.organisation.as_str().to_owned()));
    let org_names = col(|a| Some(a.accessor.organisation_name.clone()));
    let settings = col(|a| a.accessor.setting_type.map(|s| s.code().to_owned()));
    let traces = col(|a| a.trace_id.clone());
    let sds = col(|a| a.accessor.nhs.sds_user_id.clone());
    let profiles = col(|a| a.accessor.nhs.role_profile_id.clone());
    let role_codes = col(|a| a.accessor.nhs.role_code.clone());

    type Entry = (Link, AuditEntry);
    let entries = &w.audit;
    let acol = |f: fn(&Entry) -> Option<String>| entries.iter().map(f).collect::<Vec<_>>();
    let seqs: Vec<i64> = entries.iter().map(|(l, _)| l.seq).collect();
    let atimes: Vec<DateTime<Utc>> = entries.iter().map(|(_, e)| micros(&e.time)).collect();
    let actor_ids = acol(|(_, e)| Some(e.actor.id.clone()));
    let actor_names = acol(|(_, e)| Some(e.actor.name.clone()));
    let actor_orgs = acol(|(_, e)| e.actor.organisation.clone());
    let actor_roles = acol(|(_, e)| Some(e.actor.role.clone()));
    let actions = acol(|(_, e)| Some(e.action.clone()));
    let subjects = acol(|(_, e)| e.subject_nhs.map(|n| n.digits()));
    let atraces = acol(|(_, e)| e.trace_id.clone());
    let outcomes = acol(|(_, e)| Some(e.outcome.code().to_owned()));
    let details = acol(|(_, e)| e.detail.clone());
    let prev = acol(|(l, _)| Some(l.prev_hash.clone()));
    let hashes = acol(|(l, _)| Some(l.hash.clone()));

    let (head_seq, head_hash) = match &head {
        Some(h) => (Some(h.seq), Some(h.hash)),
        None => (None, None),
    };
    execute(
        conn,
        "WITH a AS (
             INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods,
                                   org_name, setting_type, trace_id, sds_user_id, role_profile_id,
                                   role_code)
             SELECT id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                    setting_type, trace_id, sds_user_id, role_profile_id, role_code
             FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                         $12::text[], $13::text[], $14::text[])
                  WITH ORDINALITY AS v(id, time, nhs_number, kind, user_id, user_name, role,
                                       org_ods, org_name, setting_type, trace_id, sds_user_id,
                                       role_profile_id, role_code, ord)
             ORDER BY ord
         ),
         l AS (
             INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role,
                                    action, subject_nhs, trace_id, outcome, detail, prev_hash,
                                    hash)
             SELECT * FROM unnest($15::int8[], $16::timestamptz[], $17::text[], $18::text[],
                                  $19::text[], $20::text[], $21::text[], $22::text[],
                                  $23::text[], $24::text[], $25::text[], $26::text[],
                                  $27::text[])
         ),
         h AS (
             UPDATE audit_head SET seq = $28::int8, hash = $29::text
             WHERE id = 1 AND $28::int8 IS NOT NULL
         )
         SELECT pg_advisory_xact_lock($31::int4, 0) WHERE $30::bool",
        &[
            &ids,
            &times,
            &nhs,
            &kinds,
            &user_ids,
            &user_names,
            &roles,
            &orgs,
            &org_names,
            &settings,
            &traces,
            &sds,
            &profiles,
            &role_codes,
            &seqs,
            &atimes,
            &actor_ids,
            &actor_names,
            &actor_orgs,
            &actor_roles,
            &actions,
            &subjects,
            &atraces,
            &outcomes,
            &details,
            &prev,
            &hashes,
            &head_seq,
            &head_hash,
            &lock,
            &super::LOCK_NOTIFY,
        ],
    )?;
    Ok(())
}

/// The notifications, each LA's numbered on from its last `la_seq`, and a delivery for every
/// active webhook of its LA (queued in the notifications' order), in one statement.
fn notifications(conn: &mut Conn, rows: &[NewNotification]) -> StoreResult<()> {
    let keys: Vec<PayloadKeys> = rows.iter().map(|n| PayloadKeys::of(&n.payload)).collect();
    let ids: Vec<&str> = rows.iter().map(|n| n.id.as_str()).collect();
    let las: Vec<&str> = rows.iter().map(|n| n.la.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|n| n.kind.code()).collect();
    let created: Vec<DateTime<Utc>> = rows.iter().map(|n| micros(&n.created_at)).collect();
    let payloads: Vec<&str> = rows.iter().map(|n| n.payload.as_str()).collect();
    let nhs: Vec<Option<String>> = keys.iter().map(|k| k.nhs_number.clone()).collect();
    let settings: Vec<Option<String>> = keys.iter().map(|k| k.setting.clone()).collect();
    let patterns: Vec<Option<String>> = keys.iter().map(|k| k.pattern.clone()).collect();
    execute(
        conn,
        "WITH v AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                                  $5::text[], $6::text[], $7::text[], $8::text[])
                  WITH ORDINALITY AS v(id, la_ods, kind, created_at, payload, nhs_number,
                                       setting_ods, pattern, ord)
         ),
         n AS (
             INSERT INTO notifications (id, la_ods, kind, created_at, payload, nhs_number,
                                        setting_ods, pattern, la_seq)
             SELECT id, la_ods, kind, created_at, payload, nhs_number, setting_ods, pattern,
                    coalesce((SELECT max(x.la_seq) FROM notifications x WHERE x.la_ods = v.la_ods), 0)
                      + row_number() OVER (PARTITION BY la_ods ORDER BY ord)
             FROM v ORDER BY ord
             RETURNING seq, id, la_ods, created_at
         )
         INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at)
         SELECT n.id, w.id, n.created_at, n.created_at
         FROM n JOIN webhooks w ON w.la_ods = n.la_ods AND w.disabled_at IS NULL
         ORDER BY n.seq, w.id",
        &[
            &ids, &las, &kinds, &created, &payloads, &nhs, &settings, &patterns,
        ],
    )?;
    Ok(())
}
