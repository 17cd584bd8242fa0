//! Lifecycle on PostgreSQL: demographics changes, retention purging, outbox depth.

use super::convert::{parse_nhs, parse_ods, ts};
use super::pool::{Conn, Pooled};
use crate::{ChangesTx, StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::{AuditEntry, Demographics, NewNotification, NhsNumber, OdsCode, Plan, PlanType};

pub struct PgChangesTx<'a> {
    conn: Pooled<'a>,
    committed: bool,
    notify_locked: bool,
    audit_head: super::audit::Head,
}

impl<'a> PgChangesTx<'a> {
    pub fn begin(mut conn: Pooled<'a>) -> StoreResult<Self> {
        conn.batch("BEGIN")?;
        Ok(PgChangesTx {
            conn,
            committed: false,
            notify_locked: false,
            audit_head: Default::default(),
        })
    }
}

impl Drop for PgChangesTx<'_> {
    fn drop(&mut self) {
        if !self.committed && self.conn.batch("ROLLBACK").is_err() {
            self.conn.discard();
        }
    }
}

impl ChangesTx for PgChangesTx<'_> {
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        super::directory::demographics(&mut self.conn, nhs)
    }

    fn upsert_demographics(&mut self, entry: &Demographics, now: DateTime<Utc>) -> StoreResult<()> {
        super::directory::upsert_demographics(&mut self.conn, std::slice::from_ref(entry), now)?;
        Ok(())
    }

    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        super::records::records_for(&mut self.conn, nhs)
    }

    fn move_records(
        &mut self,
        from: NhsNumber,
        to: NhsNumber,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<OdsCode>> {
        let rows = self.conn.query(
            "SELECT r.id, r.la_ods, t.id FROM records r
             LEFT JOIN records t ON t.nhs_number = $2 AND t.la_ods = r.la_ods
             WHERE r.nhs_number = $1 ORDER BY r.la_ods COLLATE \"C\" FOR UPDATE OF r",
            &[&from.digits(), &to.digits()],
        )?;
        let mut moved = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let la: &str = row.try_get(1)?;
            let target: Option<i64> = row.try_get(2)?;
            match target {
                None => {
                    self.conn.execute(
                        "UPDATE records SET nhs_number = $2, updated_at = $3 WHERE id = $1",
                        &[&id, &to.digits(), &ts(now)],
                    )?;
                }
                Some(t) => {
                    self.conn.execute(
                        "UPDATE plans SET record_id = $2 WHERE record_id = $1
                         AND plan_type NOT IN (SELECT plan_type FROM plans WHERE record_id = $2)",
                        &[&id, &t],
                    )?;
                    // A mark on the merged-away record is never dropped: the record kept is
                    // marked, and so are its plans (a record is marked while a plan is).
                    self.conn.execute(
                        "UPDATE plans SET sensitive = true WHERE record_id = $2
                         AND EXISTS (SELECT 1 FROM records WHERE id = $1 AND sensitive)",
                        &[&id, &t],
                    )?;
                    self.conn.execute(
                        "UPDATE records SET sensitive = true WHERE id = $2
                         AND EXISTS (SELECT 1 FROM records WHERE id = $1 AND sensitive)",
                        &[&id, &t],
                    )?;
                    self.conn
                        .execute("DELETE FROM records WHERE id = $1", &[&id])?;
                    self.conn.execute(
                        "UPDATE records SET updated_at = $2 WHERE id = $1",
                        &[&t, &ts(now)],
                    )?;
                }
            }
            moved.push(parse_ods(la)?);
        }
        Ok(moved)
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        super::lookups::insert_notification(&mut self.conn, &mut self.notify_locked, n)
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        super::audit::append(&mut self.conn, &mut self.audit_head, entry)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let this = &mut *self;
        this.audit_head.store(&mut this.conn)?;
        self.conn.batch("COMMIT")?;
        self.committed = true;
        Ok(())
    }
}

pub fn purgeable_plans(conn: &mut Conn) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>> {
    let rows = conn.query(
        "SELECT r.la_ods, r.nhs_number, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
         FROM plans p JOIN records r ON r.id = p.record_id
         WHERE p.end_date IS NOT NULL OR p.plan_type = 'UCPP'",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let t: &str = r.try_get(2)?;
        let plan = Plan::new(
            t.parse::<PlanType>()
                .map_err(|_| StoreError::corrupt("plan type"))?,
            r.try_get::<_, NaiveDate>(3)?,
            r.try_get::<_, Option<NaiveDate>>(4)?,
            r.try_get::<_, Option<NaiveDate>>(5)?,
        )
        .map_err(StoreError::corrupt)?;
        out.push((parse_ods(r.try_get(0)?)?, parse_nhs(r.try_get(1)?)?, plan));
    }
    Ok(out)
}

pub fn purge(
    conn: &mut Conn,
    plans: &[(OdsCode, NhsNumber, Plan)],
    audit: &AuditEntry,
) -> StoreResult<(u64, u64)> {
    conn.batch("BEGIN")?;
    let result = (|| -> StoreResult<(u64, u64)> {
        let mut deleted_plans = 0u64;
        let mut deleted_records = 0u64;
        for (la, nhs, plan) in plans {
            deleted_plans += conn.execute(
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
            deleted_records += conn.execute(
                "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2
                 AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
                &[&nhs.digits(), &la.as_str()],
            )?;
        }
        let mut head = super::audit::Head::default();
        let mut entry = audit.clone();
        entry.detail = Some(format!(
            "{}; deleted {deleted_plans} plans and {deleted_records} records",
            audit.detail.as_deref().unwrap_or("retention purge")
        ));
        super::audit::append(conn, &mut head, &entry)?;
        head.store(conn)?;
        Ok((deleted_plans, deleted_records))
    })();
    match result {
        Ok(r) => {
            conn.batch("COMMIT")?;
            Ok(r)
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

pub fn unacknowledged(conn: &mut Conn) -> StoreResult<u64> {
    let r = conn.query_one(
        "SELECT count(*) FROM notifications WHERE acknowledged_at IS NULL",
        &[],
    )?;
    Ok(r.try_get::<_, i64>(0)? as u64)
}

pub fn outbox_stats(conn: &mut Conn) -> StoreResult<Vec<crate::OutboxStats>> {
    // Pending rows are found through the outboxes' partial "due" indexes; dead letters are few.
    let r = conn.query_one(
        "SELECT
           (SELECT count(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND w.disabled_at IS NULL),
           (SELECT min(d.created_at) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND w.disabled_at IS NULL),
           (SELECT count(*) FROM deliveries WHERE dead_at IS NOT NULL),
           (SELECT count(*) FROM mesh_outbox WHERE sent_at IS NULL AND dead_at IS NULL),
           (SELECT min(created_at) FROM mesh_outbox WHERE sent_at IS NULL AND dead_at IS NULL),
           (SELECT count(*) FROM mesh_outbox WHERE dead_at IS NOT NULL)",
        &[],
    )?;
    Ok(vec![
        crate::OutboxStats {
            channel: "webhook",
            pending: r.try_get::<_, i64>(0)? as u64,
            oldest_pending: r.try_get::<_, Option<DateTime<Utc>>>(1)?,
            dead: r.try_get::<_, i64>(2)? as u64,
        },
        crate::OutboxStats {
            channel: "mesh",
            pending: r.try_get::<_, i64>(3)? as u64,
            oldest_pending: r.try_get::<_, Option<DateTime<Utc>>>(4)?,
            dead: r.try_get::<_, i64>(5)? as u64,
        },
    ])
}
