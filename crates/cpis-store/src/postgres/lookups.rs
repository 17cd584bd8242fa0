//! Lookups: accesses and the notification outbox.

use super::convert::{big, count, parse_nhs, parse_ods, ts};
use super::pool::{Conn, Pooled};
use super::LOCK_NOTIFY;
use crate::{LookupTx, StoreError, StoreResult, StoredRecord};
use chrono::{DateTime, Utc};
use cpis_domain::notification::Ack;
use cpis_domain::{
    Access, AccessKind, Accessor, NewNotification, NhsIdentity, NhsNumber, Notification,
    NotificationKind, OdsCode,
};
use postgres::Row;

pub struct PgLookupTx<'a> {
    conn: Pooled<'a>,
    committed: bool,
    /// Whether this transaction holds the notification lock.
    notify_locked: bool,
    audit_head: super::audit::Head,
}

impl<'a> PgLookupTx<'a> {
    pub fn begin(mut conn: Pooled<'a>) -> StoreResult<Self> {
        conn.batch("BEGIN")?;
        Ok(PgLookupTx {
            conn,
            committed: false,
            notify_locked: false,
            audit_head: Default::default(),
        })
    }
}

impl Drop for PgLookupTx<'_> {
    fn drop(&mut self) {
        if !self.committed && self.conn.batch("ROLLBACK").is_err() {
            self.conn.discard();
        }
    }
}

impl LookupTx for PgLookupTx<'_> {
    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        super::records::records_for(&mut self.conn, nhs)
    }

    fn recent_accesses(&mut self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        recent_accesses(&mut self.conn, nhs, limit)
    }

    fn local_authority(
        &mut self,
        ods: &cpis_domain::OdsCode,
    ) -> StoreResult<Option<cpis_domain::LocalAuthority>> {
        super::directory::local_authority(&mut self.conn, ods)
    }

    fn insert_access(&mut self, a: &Access) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                                   setting_type, trace_id, sds_user_id, role_profile_id, role_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &a.id,
                &ts(a.time),
                &a.nhs_number.digits(),
                &a.kind.code(),
                &a.accessor.user_id,
                &a.accessor.user_name,
                &a.accessor.role,
                &a.accessor.organisation.as_str(),
                &a.accessor.organisation_name,
                &a.accessor.setting_type.map(|s| s.code()),
                &a.trace_id,
                &a.accessor.nhs.sds_user_id,
                &a.accessor.nhs.role_profile_id,
                &a.accessor.nhs.role_code,
            ],
        )?;
        Ok(())
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        insert_notification(&mut self.conn, &mut self.notify_locked, n)
    }

    fn append_audit(&mut self, entry: &cpis_domain::AuditEntry) -> StoreResult<()> {
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

/// Appends to the LA's notification stream and queues its webhook deliveries, inside the
/// caller's transaction. Sequence numbers (the global `seq` and the LA's `la_seq` cursor) are
/// drawn only while holding the notification lock, released at commit: no notification becomes
/// visible after one with a higher number, and no two get the same. `locked` records that this
/// transaction holds it.
pub fn insert_notification(
    conn: &mut Conn,
    locked: &mut bool,
    n: &NewNotification,
) -> StoreResult<()> {
    if !*locked {
        conn.execute("SELECT pg_advisory_xact_lock($1::int4, 0)", &[&LOCK_NOTIFY])?;
        *locked = true;
    }
    conn.execute(
        "INSERT INTO notifications (id, la_ods, kind, created_at, payload, la_seq)
         VALUES ($1, $2, $3, $4, $5,
                 (SELECT coalesce(max(la_seq), 0) + 1 FROM notifications WHERE la_ods = $2))",
        &[
            &n.id,
            &n.la.as_str(),
            &n.kind.code(),
            &ts(n.created_at),
            &n.payload,
        ],
    )?;
    super::webhooks::enqueue(conn, &n.id, &n.la, n.created_at)?;
    Ok(())
}

fn access_from_row(r: &Row) -> StoreResult<Access> {
    Ok(Access {
        id: r.try_get(0)?,
        time: r.try_get(1)?,
        nhs_number: parse_nhs(r.try_get(2)?)?,
        kind: AccessKind::from_code(r.try_get(3)?)
            .ok_or_else(|| StoreError::corrupt("access kind"))?,
        accessor: Accessor {
            user_id: r.try_get(4)?,
            user_name: r.try_get(5)?,
            role: r.try_get(6)?,
            organisation: parse_ods(r.try_get(7)?)?,
            organisation_name: r.try_get(8)?,
            setting_type: r
                .try_get::<_, Option<&str>>(9)?
                .map(|s| s.parse().map_err(|_| StoreError::corrupt("setting type")))
                .transpose()?,
            nhs: NhsIdentity {
                sds_user_id: r.try_get(11)?,
                role_profile_id: r.try_get(12)?,
                role_code: r.try_get(13)?,
            },
        },
        trace_id: r.try_get(10)?,
    })
}

pub fn recent_accesses(conn: &mut Conn, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
    conn.query(
        "SELECT id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name, setting_type, trace_id,
                sds_user_id, role_profile_id, role_code
         FROM accesses WHERE nhs_number = $1 AND kind = 'unscheduled'
         ORDER BY seq DESC LIMIT $2",
        &[&nhs.digits(), &big(limit as u64)],
    )?
    .iter()
    .map(access_from_row)
    .collect()
}

pub fn notifications(
    conn: &mut Conn,
    la: &OdsCode,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    conn.query(
        "SELECT id, la_seq, la_ods, kind, created_at, payload, acknowledged_at, acknowledged_by
         FROM notifications WHERE la_ods = $1 AND la_seq > $2 ORDER BY la_seq LIMIT $3",
        &[&la.as_str(), &big(after), &i64::from(limit)],
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

/// Inside the caller's transaction. The conditional update makes concurrent acknowledgements of
/// one notification agree: exactly one of them acknowledges.
pub fn acknowledge(
    conn: &mut Conn,
    la: &OdsCode,
    id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> StoreResult<Ack> {
    let updated = conn.execute(
        "UPDATE notifications SET acknowledged_at = $3, acknowledged_by = $4
         WHERE id = $1 AND la_ods = $2 AND acknowledged_at IS NULL",
        &[&id, &la.as_str(), &ts(now), &by],
    )?;
    if updated > 0 {
        return Ok(Ack::Acknowledged(now));
    }
    let current = conn.query_opt(
        "SELECT acknowledged_at FROM notifications WHERE id = $1 AND la_ods = $2",
        &[&id, &la.as_str()],
    )?;
    Ok(match current {
        None => Ack::NotFound,
        Some(r) => match r.try_get::<_, Option<DateTime<Utc>>>(0)? {
            Some(at) => Ack::AlreadyAcknowledged(at),
            // Unreachable (the update would have matched), but never claim an acknowledgement
            // that was not written.
            None => return Err(StoreError::Backend("acknowledgement not written".into())),
        },
    })
}
