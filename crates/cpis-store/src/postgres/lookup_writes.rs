//! A lookup group's writes on PostgreSQL, sent at its commit as one statement per table: the
//! values go as arrays and `unnest` turns them back into rows, so a group of lookups costs a few
//! round trips instead of four or five per lookup (the access, its audit entry, each
//! notification and its deliveries). SQLite, in-process, writes each row as the lookup makes it.
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

/// Writes the accesses and audit entries; the notifications and their deliveries only when the
/// caller holds the notification lock (taken before this is called, if there are any).
pub fn write(conn: &mut Conn, w: &LookupWrites) -> StoreResult<()> {
    if !w.accesses.is_empty() {
        accesses(conn, &w.accesses)?;
    }
    if !w.audit.is_empty() {
        audit(conn, &w.audit)?;
    }
    if !w.notifications.is_empty() {
        notifications(conn, &w.notifications)?;
    }
    Ok(())
}

fn accesses(conn: &mut Conn, rows: &[Access]) -> StoreResult<()> {
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
    execute(
        conn,
        "INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                               setting_type, trace_id, sds_user_id, role_profile_id, role_code)
         SELECT id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                setting_type, trace_id, sds_user_id, role_profile_id, role_code
         FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[])
              WITH ORDINALITY AS v(id, time, nhs_number, kind, user_id, user_name, role, org_ods,
                                   org_name, setting_type, trace_id, sds_user_id, role_profile_id,
                                   role_code, ord)
         ORDER BY ord",
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
        ],
    )?;
    Ok(())
}

fn audit(conn: &mut Conn, rows: &[(Link, AuditEntry)]) -> StoreResult<()> {
    type Entry = (Link, AuditEntry);
    let col = |f: fn(&Entry) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let seqs: Vec<i64> = rows.iter().map(|(l, _)| l.seq).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, e)| micros(&e.time)).collect();
    let actor_ids = col(|(_, e)| Some(e.actor.id.clone()));
    let actor_names = col(|(_, e)| Some(e.actor.name.clone()));
    let actor_orgs = col(|(_, e)| e.actor.organisation.clone());
    let actor_roles = col(|(_, e)| Some(e.actor.role.clone()));
    let actions = col(|(_, e)| Some(e.action.clone()));
    let subjects = col(|(_, e)| e.subject_nhs.map(|n| n.digits()));
    let traces = col(|(_, e)| e.trace_id.clone());
    let outcomes = col(|(_, e)| Some(e.outcome.code().to_owned()));
    let details = col(|(_, e)| e.detail.clone());
    let prev = col(|(l, _)| Some(l.prev_hash.clone()));
    let hashes = col(|(l, _)| Some(l.hash.clone()));
    execute(
        conn,
        "INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action,
                                subject_nhs, trace_id, outcome, detail, prev_hash, hash)
         SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                              $11::text[], $12::text[], $13::text[])",
        &[
            &seqs,
            &times,
            &actor_ids,
            &actor_names,
            &actor_orgs,
            &actor_roles,
            &actions,
            &subjects,
            &traces,
            &outcomes,
            &details,
            &prev,
            &hashes,
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
