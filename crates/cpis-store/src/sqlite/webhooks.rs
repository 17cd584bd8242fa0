//! Webhooks and the delivery queue.

use super::convert::{parse_ods, parse_ts, ts};
use crate::{DeadDelivery, DueDelivery, StoreError, StoreResult, Webhook};
use chrono::{DateTime, Utc};
use cpis_domain::{Notification, NotificationKind, OdsCode};
use rusqlite::{params, Connection};

/// Queues a notification for every active webhook of its LA (inside the notification's
/// transaction).
pub fn enqueue(
    conn: &Connection,
    notification_id: &str,
    la: &OdsCode,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at)
         SELECT ?1, id, ?3, ?3 FROM webhooks WHERE la_ods = ?2 AND disabled_at IS NULL",
    )?
    .execute(params![notification_id, la.as_str(), ts(now)])?;
    Ok(())
}

pub fn add(conn: &Connection, w: &Webhook) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO webhooks (id, la_ods, url, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        w.id,
        w.la.as_str(),
        w.url,
        w.secret,
        ts(w.created_at)
    ])?;
    Ok(())
}

pub fn list(conn: &Connection, la: &OdsCode) -> StoreResult<Vec<Webhook>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, la_ods, url, secret, created_at FROM webhooks WHERE la_ods = ?1 AND disabled_at IS NULL ORDER BY created_at",
    )?;
    let mut rows = stmt.query([la.as_str()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Webhook {
            id: r.get(0)?,
            la: parse_ods(&r.get::<_, String>(1)?)?,
            url: r.get(2)?,
            secret: r.get(3)?,
            created_at: parse_ts(&r.get::<_, String>(4)?)?,
        });
    }
    Ok(out)
}

pub fn remove(conn: &Connection, la: &OdsCode, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("UPDATE webhooks SET disabled_at = ?3 WHERE id = ?1 AND la_ods = ?2 AND disabled_at IS NULL")?
        .execute(params![id, la.as_str(), ts(now)])?
        > 0)
}

pub fn claim(
    conn: &mut Connection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT d.id, d.attempts, d.created_at,
                    n.id, n.la_seq, n.la_ods, n.kind, n.created_at, n.payload, n.acknowledged_at, n.acknowledged_by,
                    w.id, w.la_ods, w.url, w.secret, w.created_at
             FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND d.next_attempt_at <= ?1
               AND w.disabled_at IS NULL
             ORDER BY d.next_attempt_at, d.id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![ts(now), i64::from(limit)])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(6)?;
            let acked: Option<String> = r.get(9)?;
            out.push(DueDelivery {
                id: r.get(0)?,
                attempts: r.get::<_, i64>(1)? as u32,
                created_at: parse_ts(&r.get::<_, String>(2)?)?,
                notification: Notification {
                    id: r.get(3)?,
                    seq: r.get::<_, i64>(4)? as u64,
                    la: parse_ods(&r.get::<_, String>(5)?)?,
                    kind: NotificationKind::from_code(&kind)
                        .ok_or_else(|| StoreError::corrupt("notification kind"))?,
                    created_at: parse_ts(&r.get::<_, String>(7)?)?,
                    payload: r.get(8)?,
                    acknowledged_at: acked.as_deref().map(parse_ts).transpose()?,
                    acknowledged_by: r.get(10)?,
                },
                webhook: Webhook {
                    id: r.get(11)?,
                    la: parse_ods(&r.get::<_, String>(12)?)?,
                    url: r.get(13)?,
                    secret: r.get(14)?,
                    created_at: parse_ts(&r.get::<_, String>(15)?)?,
                },
            });
        }
    }
    {
        let mut lease =
            tx.prepare_cached("UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1")?;
        for d in &out {
            lease.execute(params![d.id, ts(lease_until)])?;
        }
    }
    tx.commit()?;
    Ok(out)
}

pub fn succeeded(conn: &Connection, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET delivered_at = ?3, last_status = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, i64::from(status), ts(now)])?;
    Ok(())
}

pub fn failed(
    conn: &Connection,
    id: i64,
    status: Option<u16>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let err: String = error.chars().take(500).collect();
    match retry_at {
        Some(at) => conn
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_status = ?2, last_error = ?3, next_attempt_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, status.map(i64::from), err, ts(at)])?,
        None => conn
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_status = ?2, last_error = ?3, dead_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, status.map(i64::from), err, ts(now)])?,
    };
    Ok(())
}

pub fn dead(conn: &Connection, limit: u32) -> StoreResult<Vec<DeadDelivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.notification_id, w.la_ods, w.url, d.attempts, d.last_status, d.last_error, d.created_at, d.dead_at
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.dead_at IS NOT NULL ORDER BY d.dead_at DESC LIMIT ?1",
    )?;
    let mut rows = stmt.query([i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(DeadDelivery {
            id: r.get(0)?,
            notification_id: r.get(1)?,
            la: r.get(2)?,
            url: r.get(3)?,
            attempts: r.get::<_, i64>(4)? as u32,
            last_status: r.get::<_, Option<i64>>(5)?.map(|s| s as u16),
            last_error: r.get(6)?,
            created_at: parse_ts(&r.get::<_, String>(7)?)?,
            dead_at: parse_ts(&r.get::<_, String>(8)?)?,
        });
    }
    Ok(out)
}
