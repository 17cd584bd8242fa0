//! Lookups: accesses and the notification outbox.

use super::convert::{parse_nhs, parse_ods, parse_ts, ts};
use crate::{LookupTx, StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, Utc};
use cpis_domain::notification::Ack;
use cpis_domain::{
    Access, AccessKind, Accessor, NewNotification, NhsIdentity, NhsNumber, Notification,
    NotificationKind, OdsCode,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::MutexGuard;

pub struct SqliteLookupTx<'a> {
    conn: MutexGuard<'a, Connection>,
    committed: bool,
    audit_head: super::audit::Head,
}

impl<'a> SqliteLookupTx<'a> {
    pub fn begin(conn: MutexGuard<'a, Connection>) -> StoreResult<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteLookupTx {
            conn,
            committed: false,
            audit_head: Default::default(),
        })
    }
}

impl Drop for SqliteLookupTx<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl LookupTx for SqliteLookupTx<'_> {
    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        super::records::records_for(&self.conn, nhs)
    }

    fn local_authority(
        &mut self,
        ods: &OdsCode,
    ) -> StoreResult<Option<cpis_domain::LocalAuthority>> {
        super::directory::local_authority(&self.conn, ods)
    }

    fn recent_accesses(&mut self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        recent_accesses(&self.conn, nhs, limit)
    }

    fn insert_access(&mut self, a: &Access) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                                       setting_type, trace_id, sds_user_id, role_profile_id, role_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                a.id,
                ts(a.time),
                a.nhs_number.digits(),
                a.kind.code(),
                a.accessor.user_id,
                a.accessor.user_name,
                a.accessor.role,
                a.accessor.organisation.as_str(),
                a.accessor.organisation_name,
                a.accessor.setting_type.map(|s| s.code()),
                a.trace_id,
                a.accessor.nhs.sds_user_id,
                a.accessor.nhs.role_profile_id,
                a.accessor.nhs.role_code
            ])?;
        Ok(())
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        insert_notification(&self.conn, n)
    }

    fn append_audit(&mut self, entry: &cpis_domain::AuditEntry) -> StoreResult<()> {
        super::audit::append(&self.conn, &mut self.audit_head, entry)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.audit_head.store(&self.conn)?;
        self.conn.execute_batch("COMMIT")?;
        self.committed = true;
        Ok(())
    }
}

/// Appends to the LA's notification stream (its own cursor numbering).
pub fn insert_notification(conn: &Connection, n: &NewNotification) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO notifications (id, la_ods, kind, created_at, payload, la_seq)
         VALUES (?1, ?2, ?3, ?4, ?5,
                 (SELECT coalesce(max(la_seq), 0) + 1 FROM notifications WHERE la_ods = ?2))",
    )?
    .execute(params![
        n.id,
        n.la.as_str(),
        n.kind.code(),
        ts(n.created_at),
        n.payload
    ])?;
    super::webhooks::enqueue(conn, &n.id, &n.la, n.created_at)?;
    Ok(())
}

fn access_from_row(r: &Row<'_>) -> StoreResult<Access> {
    let kind: String = r.get(3)?;
    let setting: Option<String> = r.get(10)?;
    Ok(Access {
        id: r.get(0)?,
        time: parse_ts(&r.get::<_, String>(1)?)?,
        nhs_number: parse_nhs(&r.get::<_, String>(2)?)?,
        kind: AccessKind::from_code(&kind).ok_or_else(|| StoreError::corrupt("access kind"))?,
        accessor: Accessor {
            user_id: r.get(4)?,
            user_name: r.get(5)?,
            role: r.get(6)?,
            organisation: parse_ods(&r.get::<_, String>(7)?)?,
            organisation_name: r.get(8)?,
            setting_type: setting
                .map(|s| s.parse().map_err(|_| StoreError::corrupt("setting type")))
                .transpose()?,
            nhs: NhsIdentity {
                sds_user_id: r.get(12)?,
                role_profile_id: r.get(13)?,
                role_code: r.get(14)?,
            },
        },
        trace_id: r.get(11)?,
    })
}

pub fn recent_accesses(
    conn: &Connection,
    nhs: NhsNumber,
    limit: usize,
) -> StoreResult<Vec<Access>> {
    // The limit is written into the statement, not bound: SQLite's planner reads a bound LIMIT,
    // which makes every new binding re-prepare the statement (it showed as about 8% of a busy
    // server's CPU). Callers use one limit (SPEC: the 25 most recent), so one cached statement.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name, seq, setting_type, trace_id,
                sds_user_id, role_profile_id, role_code
         FROM accesses WHERE nhs_number = ?1 AND kind = 'unscheduled'
         ORDER BY seq DESC LIMIT {limit}"
    ))?;
    let mut rows = stmt.query(params![nhs.digits()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(access_from_row(r)?);
    }
    Ok(out)
}

pub fn notifications(
    conn: &Connection,
    la: &OdsCode,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, la_seq, la_ods, kind, created_at, payload, acknowledged_at, acknowledged_by
         FROM notifications WHERE la_ods = ?1 AND la_seq > ?2 ORDER BY la_seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![la.as_str(), after as i64, i64::from(limit)])?;
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

pub fn acknowledge(
    conn: &mut Connection,
    la: &OdsCode,
    id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> StoreResult<Ack> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: Option<Option<String>> = tx
        .prepare_cached("SELECT acknowledged_at FROM notifications WHERE id = ?1 AND la_ods = ?2")?
        .query_row(params![id, la.as_str()], |r| r.get(0))
        .optional()?;
    let ack = match current {
        None => Ack::NotFound,
        Some(Some(at)) => Ack::AlreadyAcknowledged(parse_ts(&at)?),
        Some(None) => {
            tx.prepare_cached(
                "UPDATE notifications SET acknowledged_at = ?3, acknowledged_by = ?4 WHERE id = ?1 AND la_ods = ?2",
            )?
            .execute(params![id, la.as_str(), ts(now), by])?;
            Ack::Acknowledged(now)
        }
    };
    tx.commit()?;
    Ok(ack)
}
