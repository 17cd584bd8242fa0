//! Lifecycle: demographics changes (records follow superseded numbers), retention purging,
//! backups.

use super::convert::{date, parse_date, parse_nhs, parse_ods, parse_opt_date, ts};
use crate::{ChangesTx, StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, Utc};
use cpis_domain::{AuditEntry, Demographics, NewNotification, NhsNumber, OdsCode, Plan, PlanType};
use rusqlite::{params, Connection};
use std::sync::MutexGuard;

pub struct SqliteChangesTx<'a> {
    conn: MutexGuard<'a, Connection>,
    committed: bool,
    audit_head: super::audit::Head,
}

impl<'a> SqliteChangesTx<'a> {
    pub fn begin(conn: MutexGuard<'a, Connection>) -> StoreResult<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteChangesTx {
            conn,
            committed: false,
            audit_head: Default::default(),
        })
    }
}

impl Drop for SqliteChangesTx<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl ChangesTx for SqliteChangesTx<'_> {
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        super::directory::demographics(&self.conn, nhs)
    }

    fn upsert_demographics(&mut self, entry: &Demographics, now: DateTime<Utc>) -> StoreResult<()> {
        super::directory::upsert_demographic(&self.conn, entry, now)
    }

    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        super::records::records_for(&self.conn, nhs)
    }

    fn move_records(
        &mut self,
        from: NhsNumber,
        to: NhsNumber,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<OdsCode>> {
        let rows: Vec<(i64, String, Option<i64>)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT r.id, r.la_ods, t.id FROM records r
                 LEFT JOIN records t ON t.nhs_number = ?2 AND t.la_ods = r.la_ods
                 WHERE r.nhs_number = ?1 ORDER BY r.la_ods",
            )?;
            let mapped = stmt.query_map(params![from.digits(), to.digits()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            mapped.collect::<Result<_, _>>()?
        };
        let mut moved = Vec::with_capacity(rows.len());
        for (id, la, target) in rows {
            match target {
                None => {
                    self.conn
                        .prepare_cached(
                            "UPDATE records SET nhs_number = ?2, updated_at = ?3 WHERE id = ?1",
                        )?
                        .execute(params![id, to.digits(), ts(now)])?;
                }
                Some(t) => {
                    self.conn
                        .prepare_cached(
                            "UPDATE plans SET record_id = ?2 WHERE record_id = ?1
                             AND plan_type NOT IN (SELECT plan_type FROM plans WHERE record_id = ?2)",
                        )?
                        .execute(params![id, t])?;
                    // A mark on the merged-away record is never dropped: the record kept is
                    // marked, and so are its plans (a record is marked while a plan is).
                    self.conn
                        .prepare_cached(
                            "UPDATE plans SET sensitive = 1 WHERE record_id = ?2
                             AND EXISTS (SELECT 1 FROM records WHERE id = ?1 AND sensitive = 1)",
                        )?
                        .execute(params![id, t])?;
                    self.conn
                        .prepare_cached(
                            "UPDATE records SET sensitive = 1 WHERE id = ?2
                             AND EXISTS (SELECT 1 FROM records WHERE id = ?1 AND sensitive = 1)",
                        )?
                        .execute(params![id, t])?;
                    self.conn
                        .prepare_cached("DELETE FROM records WHERE id = ?1")?
                        .execute([id])?;
                    self.conn
                        .prepare_cached("UPDATE records SET updated_at = ?2 WHERE id = ?1")?
                        .execute(params![t, ts(now)])?;
                }
            }
            moved.push(parse_ods(&la)?);
        }
        Ok(moved)
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        super::lookups::insert_notification(&self.conn, n)
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        super::audit::append(&self.conn, &mut self.audit_head, entry)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.audit_head.store(&self.conn)?;
        self.conn.execute_batch("COMMIT")?;
        self.committed = true;
        Ok(())
    }
}

pub fn purgeable_plans(conn: &Connection) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>> {
    let mut stmt = conn.prepare(
        "SELECT r.la_ods, r.nhs_number, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM plans p JOIN records r ON r.id = p.record_id
         WHERE p.end_date IS NOT NULL OR p.plan_type = 'UCPP'",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let t: String = r.get(2)?;
        let plan = Plan::new(
            t.parse::<PlanType>()
                .map_err(|_| StoreError::corrupt("plan type"))?,
            parse_date(&r.get::<_, String>(3)?)?,
            parse_opt_date(r.get(4)?)?,
            parse_opt_date(r.get(5)?)?,
        )
        .map_err(StoreError::corrupt)?;
        out.push((
            parse_ods(&r.get::<_, String>(0)?)?,
            parse_nhs(&r.get::<_, String>(1)?)?,
            plan,
        ));
    }
    Ok(out)
}

pub fn purge(
    conn: &mut Connection,
    plans: &[(OdsCode, NhsNumber, Plan)],
    audit: &AuditEntry,
) -> StoreResult<(u64, u64)> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deleted_plans = 0u64;
    let mut deleted_records = 0u64;
    for (la, nhs, plan) in plans {
        // Only if unchanged since it was listed: a plan an upload reopened is kept.
        deleted_plans += tx
            .prepare_cached(
                "DELETE FROM plans WHERE plan_type = ?3 AND start_date = ?4
                   AND end_date IS ?5 AND expected_delivery_date IS ?6
                   AND record_id = (SELECT id FROM records WHERE nhs_number = ?1 AND la_ods = ?2)",
            )?
            .execute(params![
                nhs.digits(),
                la.as_str(),
                plan.plan_type().code(),
                date(plan.start()),
                plan.end().map(date),
                plan.expected_delivery().map(date)
            ])? as u64;
        deleted_records += tx
            .prepare_cached(
                "DELETE FROM records WHERE nhs_number = ?1 AND la_ods = ?2
                 AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
            )?
            .execute(params![nhs.digits(), la.as_str()])? as u64;
    }
    let mut head = super::audit::Head::default();
    let mut entry = audit.clone();
    entry.detail = Some(format!(
        "{}; deleted {deleted_plans} plans and {deleted_records} records",
        audit.detail.as_deref().unwrap_or("retention purge")
    ));
    super::audit::append(&tx, &mut head, &entry)?;
    head.store(&tx)?;
    tx.commit()?;
    Ok((deleted_plans, deleted_records))
}

pub fn backup_to(conn: &Connection, path: &std::path::Path) -> StoreResult<()> {
    let mut dst = Connection::open(path)?;
    let backup = rusqlite::backup::Backup::new(conn, &mut dst)?;
    backup.run_to_completion(256, std::time::Duration::from_millis(0), None)?;
    Ok(())
}

pub fn unacknowledged(conn: &Connection) -> StoreResult<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM notifications WHERE acknowledged_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

pub fn outbox_stats(conn: &Connection) -> StoreResult<Vec<crate::OutboxStats>> {
    // Pending rows are found through the outboxes' partial "due" indexes; dead letters are few.
    let webhook = conn.query_row(
        "SELECT count(*), min(d.created_at) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND w.disabled_at IS NULL",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
    )?;
    let webhook_dead = conn.query_row(
        "SELECT count(*) FROM deliveries WHERE dead_at IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )?;
    let mesh = conn.query_row(
        "SELECT count(*), min(created_at) FROM mesh_outbox WHERE sent_at IS NULL AND dead_at IS NULL",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
    )?;
    let mesh_dead = conn.query_row(
        "SELECT count(*) FROM mesh_outbox WHERE dead_at IS NOT NULL",
        [],
        |r| r.get::<_, i64>(0),
    )?;
    let stats = |channel, (pending, oldest): (i64, Option<String>), dead: i64| -> StoreResult<_> {
        Ok(crate::OutboxStats {
            channel,
            pending: pending as u64,
            oldest_pending: oldest
                .as_deref()
                .map(super::convert::parse_ts)
                .transpose()?,
            dead: dead as u64,
        })
    };
    Ok(vec![
        stats("webhook", webhook, webhook_dead)?,
        stats("mesh", mesh, mesh_dead)?,
    ])
}
