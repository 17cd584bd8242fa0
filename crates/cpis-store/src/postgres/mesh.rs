//! The MESH outbox on PostgreSQL. Workers on several servers claim due rows with
//! `FOR UPDATE SKIP LOCKED`, so no message is sent by two workers at once.

use super::convert::{big, count, parse_ods, ts};
use super::pool::Conn;
use crate::{MeshOutboxEntry, MeshOutgoing, NewMeshMessage, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{Notification, NotificationKind, OdsCode};

pub fn pending_notifications(
    conn: &mut Conn,
    limit: u32,
) -> StoreResult<Vec<(Notification, String)>> {
    conn.query(
        "SELECT n.id, n.la_seq, n.la_ods, n.kind, n.created_at, n.payload, n.acknowledged_at,
                n.acknowledged_by, la.mesh_mailbox
         FROM local_authorities la
         JOIN notifications n ON n.la_ods = la.ods_code
         LEFT JOIN mesh_cursors c ON c.la_ods = la.ods_code
         WHERE la.mesh_mailbox IS NOT NULL AND n.la_seq > COALESCE(c.queued_seq, 0)
         ORDER BY n.la_ods, n.la_seq LIMIT $1",
        &[&i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        Ok((
            Notification {
                id: r.try_get(0)?,
                seq: count(r.try_get(1)?),
                la: parse_ods(r.try_get(2)?)?,
                kind: NotificationKind::from_code(r.try_get(3)?)
                    .ok_or_else(|| StoreError::corrupt("notification kind"))?,
                created_at: r.try_get(4)?,
                payload: r.try_get(5)?,
                acknowledged_at: r.try_get(6)?,
                acknowledged_by: r.try_get(7)?,
            },
            r.try_get(8)?,
        ))
    })
    .collect()
}

pub fn enqueue(
    conn: &mut Conn,
    messages: &[NewMeshMessage],
    cursors: &[(OdsCode, u64)],
) -> StoreResult<usize> {
    let mut new = 0;
    for m in messages {
        new += conn.execute(
            "INSERT INTO mesh_outbox (local_id, recipient, workflow_id, subject, filename,
                                      content_type, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (local_id) DO NOTHING",
            &[
                &m.local_id,
                &m.recipient,
                &m.workflow_id,
                &m.subject,
                &m.filename,
                &m.content_type,
                &m.body,
                &ts(m.created_at),
            ],
        )? as usize;
    }
    for (la, seq) in cursors {
        conn.execute(
            "INSERT INTO mesh_cursors (la_ods, queued_seq) VALUES ($1, $2)
             ON CONFLICT (la_ods) DO UPDATE
             SET queued_seq = GREATEST(mesh_cursors.queued_seq, excluded.queued_seq)",
            &[&la.as_str(), &big(*seq)],
        )?;
    }
    Ok(new)
}

pub fn claim(
    conn: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<MeshOutgoing>> {
    let rows = conn.query(
        "SELECT id, local_id, recipient, workflow_id, subject, filename, content_type, body,
                created_at, attempts, send_started_at
         FROM mesh_outbox
         WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
         ORDER BY next_attempt_at, id LIMIT $2
         FOR UPDATE SKIP LOCKED",
        &[&ts(now), &i64::from(limit)],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(MeshOutgoing {
            id: r.try_get(0)?,
            message: NewMeshMessage {
                local_id: r.try_get(1)?,
                recipient: r.try_get(2)?,
                workflow_id: r.try_get(3)?,
                subject: r.try_get(4)?,
                filename: r.try_get(5)?,
                content_type: r.try_get(6)?,
                body: r.try_get(7)?,
                created_at: r.try_get(8)?,
            },
            attempts: r.try_get::<_, i32>(9)? as u32,
            send_started: r.try_get::<_, Option<DateTime<Utc>>>(10)?.is_some(),
        });
    }
    for m in &out {
        conn.execute(
            "UPDATE mesh_outbox SET next_attempt_at = $2 WHERE id = $1",
            &[&m.id, &ts(lease_until)],
        )?;
    }
    Ok(out)
}

pub fn send_started(conn: &mut Conn, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    conn.execute(
        "UPDATE mesh_outbox SET send_started_at = COALESCE(send_started_at, $2) WHERE id = $1",
        &[&id, &ts(now)],
    )?;
    Ok(())
}

pub fn sent(conn: &mut Conn, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    conn.execute(
        "UPDATE mesh_outbox SET message_id = $2, sent_at = $3, attempts = attempts + 1,
                last_error = NULL WHERE id = $1",
        &[&id, &message_id, &ts(now)],
    )?;
    Ok(())
}

pub fn failed(
    conn: &mut Conn,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let err: String = error.chars().take(500).collect();
    match retry_at {
        Some(at) => conn.execute(
            "UPDATE mesh_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
             WHERE id = $1",
            &[&id, &err, &ts(at)],
        )?,
        None => conn.execute(
            "UPDATE mesh_outbox SET attempts = attempts + 1, last_error = $2, dead_at = $3
             WHERE id = $1",
            &[&id, &err, &ts(now)],
        )?,
    };
    Ok(())
}

pub fn outbox(conn: &mut Conn, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>> {
    conn.query(
        "SELECT local_id, recipient, workflow_id, created_at, attempts, message_id, sent_at,
                last_error, dead_at
         FROM mesh_outbox ORDER BY id DESC LIMIT $1",
        &[&i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        Ok(MeshOutboxEntry {
            local_id: r.try_get(0)?,
            recipient: r.try_get(1)?,
            workflow_id: r.try_get(2)?,
            created_at: r.try_get(3)?,
            attempts: r.try_get::<_, i32>(4)? as u32,
            message_id: r.try_get(5)?,
            sent_at: r.try_get(6)?,
            last_error: r.try_get(7)?,
            dead_at: r.try_get(8)?,
        })
    })
    .collect()
}
