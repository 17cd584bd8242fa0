//! Webhooks and the delivery queue on PostgreSQL. Workers on several servers claim due rows with
//! `FOR UPDATE SKIP LOCKED`, so no delivery is sent by two workers at once.

use super::convert::{parse_ods, ts};
use super::pool::Conn;
use crate::{DeadDelivery, DueDelivery, StoreError, StoreResult, Webhook};
use chrono::{DateTime, Utc};
use cpis_domain::{Notification, NotificationKind, OdsCode};

pub fn enqueue(
    conn: &mut Conn,
    notification_id: &str,
    la: &OdsCode,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at)
         SELECT $1, id, $3, $3 FROM webhooks WHERE la_ods = $2 AND disabled_at IS NULL",
        &[&notification_id, &la.as_str(), &ts(now)],
    )?;
    Ok(())
}

pub fn add(conn: &mut Conn, w: &Webhook) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO webhooks (id, la_ods, url, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[&w.id, &w.la.as_str(), &w.url, &w.secret, &ts(w.created_at)],
    )?;
    Ok(())
}

fn webhook(r: &postgres::Row, at: usize) -> StoreResult<Webhook> {
    Ok(Webhook {
        id: r.try_get(at)?,
        la: parse_ods(r.try_get(at + 1)?)?,
        url: r.try_get(at + 2)?,
        secret: r.try_get(at + 3)?,
        created_at: r.try_get(at + 4)?,
    })
}

pub fn list(conn: &mut Conn, la: &OdsCode) -> StoreResult<Vec<Webhook>> {
    conn.query(
        "SELECT id, la_ods, url, secret, created_at FROM webhooks
         WHERE la_ods = $1 AND disabled_at IS NULL ORDER BY created_at",
        &[&la.as_str()],
    )?
    .iter()
    .map(|r| webhook(r, 0))
    .collect()
}

pub fn remove(conn: &mut Conn, la: &OdsCode, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE webhooks SET disabled_at = $3 WHERE id = $1 AND la_ods = $2 AND disabled_at IS NULL",
        &[&id, &la.as_str(), &ts(now)],
    )? > 0)
}

pub fn claim(
    conn: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    conn.batch("BEGIN")?;
    let result = (|| -> StoreResult<Vec<DueDelivery>> {
        let rows = conn.query(
            "SELECT d.id, d.attempts, d.created_at,
                    n.id, n.la_seq, n.la_ods, n.kind, n.created_at, n.payload, n.acknowledged_at, n.acknowledged_by,
                    w.id, w.la_ods, w.url, w.secret, w.created_at
             FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND d.next_attempt_at <= $1
               AND w.disabled_at IS NULL
             ORDER BY d.next_attempt_at, d.id LIMIT $2
             FOR UPDATE OF d SKIP LOCKED",
            &[&ts(now), &i64::from(limit)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: &str = r.try_get(6)?;
            out.push(DueDelivery {
                id: r.try_get(0)?,
                attempts: r.try_get::<_, i32>(1)? as u32,
                created_at: r.try_get(2)?,
                notification: Notification {
                    id: r.try_get(3)?,
                    seq: r.try_get::<_, i64>(4)? as u64,
                    la: parse_ods(r.try_get(5)?)?,
                    kind: NotificationKind::from_code(kind)
                        .ok_or_else(|| StoreError::corrupt("notification kind"))?,
                    created_at: r.try_get(7)?,
                    payload: r.try_get(8)?,
                    acknowledged_at: r.try_get(9)?,
                    acknowledged_by: r.try_get(10)?,
                },
                webhook: webhook(r, 11)?,
            });
        }
        for d in &out {
            conn.execute(
                "UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1",
                &[&d.id, &ts(lease_until)],
            )?;
        }
        Ok(out)
    })();
    match result {
        Ok(out) => {
            conn.batch("COMMIT")?;
            Ok(out)
        }
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

pub fn succeeded(conn: &mut Conn, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()> {
    conn.execute(
        "UPDATE deliveries SET delivered_at = $3, last_status = $2, attempts = attempts + 1, last_error = NULL
         WHERE id = $1",
        &[&id, &i32::from(status), &ts(now)],
    )?;
    Ok(())
}

pub fn failed(
    conn: &mut Conn,
    id: i64,
    status: Option<u16>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let err: String = error.chars().take(500).collect();
    let status = status.map(i32::from);
    match retry_at {
        Some(at) => conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, next_attempt_at = $4
             WHERE id = $1",
            &[&id, &status, &err, &ts(at)],
        )?,
        None => conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, dead_at = $4
             WHERE id = $1",
            &[&id, &status, &err, &ts(now)],
        )?,
    };
    Ok(())
}

pub fn dead(conn: &mut Conn, limit: u32) -> StoreResult<Vec<DeadDelivery>> {
    conn.query(
        "SELECT d.id, d.notification_id, w.la_ods, w.url, d.attempts, d.last_status, d.last_error, d.created_at, d.dead_at
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.dead_at IS NOT NULL ORDER BY d.dead_at DESC LIMIT $1",
        &[&i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        Ok(DeadDelivery {
            id: r.try_get(0)?,
            notification_id: r.try_get(1)?,
            la: r.try_get(2)?,
            url: r.try_get(3)?,
            attempts: r.try_get::<_, i32>(4)? as u32,
            last_status: r.try_get::<_, Option<i32>>(5)?.map(|s| s as u16),
            last_error: r.try_get(6)?,
            created_at: r.try_get(7)?,
            dead_at: r.try_get(8)?,
        })
    })
    .collect()
}
