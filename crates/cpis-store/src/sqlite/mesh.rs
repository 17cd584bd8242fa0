//! The MESH outbox on SQLite.

use super::convert::{parse_ods, parse_ts, ts};
use crate::{MeshOutboxEntry, MeshOutgoing, NewMeshMessage, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{Notification, NotificationKind, OdsCode};
use rusqlite::{params, Connection};

pub fn pending_notifications(
    conn: &Connection,
    limit: u32,
) -> StoreResult<Vec<(Notification, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.la_seq, n.la_ods, n.kind, n.created_at, n.payload, n.acknowledged_at,
                n.acknowledged_by, la.mesh_mailbox
         FROM local_authorities la
         JOIN notifications n ON n.la_ods = la.ods_code
         LEFT JOIN mesh_cursors c ON c.la_ods = la.ods_code
         WHERE la.mesh_mailbox IS NOT NULL AND n.la_seq > COALESCE(c.queued_seq, 0)
         ORDER BY n.la_ods, n.la_seq LIMIT ?1",
    )?;
    let mut rows = stmt.query([i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let kind: String = r.get(3)?;
        let acked: Option<String> = r.get(6)?;
        out.push((
            Notification {
                id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                la: parse_ods(&r.get::<_, String>(2)?)?,
                kind: NotificationKind::from_code(&kind)
                    .ok_or_else(|| StoreError::corrupt("notification kind"))?,
                created_at: parse_ts(&r.get::<_, String>(4)?)?,
                payload: r.get(5)?,
                acknowledged_at: acked.as_deref().map(parse_ts).transpose()?,
                acknowledged_by: r.get(7)?,
            },
            r.get(8)?,
        ));
    }
    Ok(out)
}

pub fn enqueue(
    conn: &mut Connection,
    messages: &[NewMeshMessage],
    cursors: &[(OdsCode, u64)],
) -> StoreResult<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut new = 0;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO mesh_outbox (local_id, recipient, workflow_id, subject, filename,
                                      content_type, body, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (local_id) DO NOTHING",
        )?;
        for m in messages {
            new += insert.execute(params![
                m.local_id,
                m.recipient,
                m.workflow_id,
                m.subject,
                m.filename,
                m.content_type,
                m.body,
                ts(m.created_at)
            ])?;
        }
        let mut cursor = tx.prepare_cached(
            "INSERT INTO mesh_cursors (la_ods, queued_seq) VALUES (?1, ?2)
             ON CONFLICT (la_ods) DO UPDATE SET queued_seq = max(queued_seq, excluded.queued_seq)",
        )?;
        for (la, seq) in cursors {
            cursor.execute(params![la.as_str(), *seq as i64])?;
        }
    }
    tx.commit()?;
    Ok(new)
}

pub fn claim(
    conn: &mut Connection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<MeshOutgoing>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT id, local_id, recipient, workflow_id, subject, filename, content_type, body,
                    created_at, attempts, send_started_at
             FROM mesh_outbox
             WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![ts(now), i64::from(limit)])?;
        while let Some(r) = rows.next()? {
            out.push(MeshOutgoing {
                id: r.get(0)?,
                message: NewMeshMessage {
                    local_id: r.get(1)?,
                    recipient: r.get(2)?,
                    workflow_id: r.get(3)?,
                    subject: r.get(4)?,
                    filename: r.get(5)?,
                    content_type: r.get(6)?,
                    body: r.get(7)?,
                    created_at: parse_ts(&r.get::<_, String>(8)?)?,
                },
                attempts: r.get::<_, i64>(9)? as u32,
                send_started: r.get::<_, Option<String>>(10)?.is_some(),
            });
        }
        let mut lease =
            tx.prepare_cached("UPDATE mesh_outbox SET next_attempt_at = ?2 WHERE id = ?1")?;
        for m in &out {
            lease.execute(params![m.id, ts(lease_until)])?;
        }
    }
    tx.commit()?;
    Ok(out)
}

pub fn send_started(conn: &Connection, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE mesh_outbox SET send_started_at = COALESCE(send_started_at, ?2) WHERE id = ?1",
    )?
    .execute(params![id, ts(now)])?;
    Ok(())
}

pub fn sent(conn: &Connection, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE mesh_outbox SET message_id = ?2, sent_at = ?3, attempts = attempts + 1,
                last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, message_id, ts(now)])?;
    Ok(())
}

pub fn failed(
    conn: &Connection,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let err: String = error.chars().take(500).collect();
    match retry_at {
        Some(at) => conn
            .prepare_cached(
                "UPDATE mesh_outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, err, ts(at)])?,
        None => conn
            .prepare_cached(
                "UPDATE mesh_outbox SET attempts = attempts + 1, last_error = ?2, dead_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, err, ts(now)])?,
    };
    Ok(())
}

pub fn outbox(conn: &Connection, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT local_id, recipient, workflow_id, created_at, attempts, message_id, sent_at,
                last_error, dead_at
         FROM mesh_outbox ORDER BY id DESC LIMIT ?1",
    )?;
    let mut rows = stmt.query([i64::from(limit)])?;
    let mut out = Vec::new();
    let opt_ts = |v: Option<String>| v.as_deref().map(parse_ts).transpose();
    while let Some(r) = rows.next()? {
        out.push(MeshOutboxEntry {
            local_id: r.get(0)?,
            recipient: r.get(1)?,
            workflow_id: r.get(2)?,
            created_at: parse_ts(&r.get::<_, String>(3)?)?,
            attempts: r.get::<_, i64>(4)? as u32,
            message_id: r.get(5)?,
            sent_at: opt_ts(r.get(6)?)?,
            last_error: r.get(7)?,
            dead_at: opt_ts(r.get(8)?)?,
        });
    }
    Ok(out)
}
