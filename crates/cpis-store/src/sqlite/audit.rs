//! The hash-chained audit trail.

use super::convert::{parse_nhs, parse_ts, ts};
use crate::audit_chain::{entry_hash, time_text, AuditVerification, GENESIS};
use crate::{AuditQuery, StoreError, StoreResult};
use cpis_domain::{AuditActor, AuditEntry, AuditOutcome, AuditRecord};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The chain head as a transaction sees it: read once, advanced by each append, written back
/// once before the transaction commits (a group of lookups appends many entries).
#[derive(Default)]
pub struct Head(Option<(i64, String)>);

impl Head {
    fn load(&mut self, conn: &Connection) -> StoreResult<(i64, String)> {
        if let Some(h) = &self.0 {
            return Ok(h.clone());
        }
        let head: Option<(i64, String)> = conn
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let head = head.unwrap_or((0, GENESIS.to_owned()));
        self.0 = Some(head.clone());
        Ok(head)
    }

    /// Writes the head row if anything was appended. Call before COMMIT.
    pub fn store(&self, conn: &Connection) -> StoreResult<()> {
        if let Some((seq, hash)) = &self.0 {
            if *seq > 0 {
                conn.prepare_cached(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                )?
                .execute(params![seq, hash])?;
            }
        }
        Ok(())
    }
}

/// Appends inside the caller's transaction; `head.store` must run before it commits.
pub fn append(conn: &Connection, head: &mut Head, e: &AuditEntry) -> StoreResult<()> {
    let (prev_seq, prev_hash) = head.load(conn)?;
    let seq = prev_seq as u64 + 1;
    let hash = entry_hash(&prev_hash, seq, e);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                                trace_id, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        seq as i64,
        time_text(e),
        e.actor.id,
        e.actor.name,
        e.actor.organisation,
        e.actor.role,
        e.action,
        e.subject_nhs.map(|n| n.digits()),
        e.trace_id,
        e.outcome.code(),
        e.detail,
        prev_hash,
        hash
    ])?;
    head.0 = Some((seq as i64, hash));
    Ok(())
}

/// Appends one entry inside the caller's transaction and writes the head at once (the
/// transaction's only append).
fn append_one(conn: &Connection, e: &AuditEntry) -> StoreResult<()> {
    let mut head = Head::default();
    append(conn, &mut head, e)?;
    head.store(conn)
}

/// Runs `change` and, when `changed` says it changed something, appends `entry`, in one
/// immediate transaction: an administrative change is never stored without its audit entry, and
/// one that fails or changes nothing appends none.
pub fn audited<T>(
    conn: &mut Connection,
    entry: &AuditEntry,
    change: impl FnOnce(&Connection) -> StoreResult<T>,
    changed: impl FnOnce(&T) -> bool,
) -> StoreResult<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = change(&tx)?;
    if changed(&out) {
        append_one(&tx, entry)?;
    }
    tx.commit()?;
    Ok(out)
}

/// Appends in a transaction of its own.
pub fn append_alone(conn: &mut Connection, e: &AuditEntry) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    append_one(&tx, e)?;
    tx.commit()?;
    Ok(())
}

const COLUMNS: &str =
    "seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs, trace_id,
    outcome, detail, prev_hash, hash";

fn from_row(r: &Row<'_>) -> StoreResult<(AuditRecord, String)> {
    let outcome: String = r.get(9)?;
    let nhs: Option<String> = r.get(7)?;
    Ok((
        AuditRecord {
            seq: r.get::<_, i64>(0)? as u64,
            entry: AuditEntry {
                time: parse_ts(&r.get::<_, String>(1)?)?,
                actor: AuditActor {
                    id: r.get(2)?,
                    name: r.get(3)?,
                    organisation: r.get(4)?,
                    role: r.get(5)?,
                },
                action: r.get(6)?,
                subject_nhs: nhs.as_deref().map(parse_nhs).transpose()?,
                trace_id: r.get(8)?,
                outcome: AuditOutcome::from_code(&outcome)
                    .ok_or_else(|| StoreError::corrupt("audit outcome"))?,
                detail: r.get(10)?,
            },
            hash: r.get(12)?,
        },
        r.get(11)?,
    ))
}

pub fn search(conn: &Connection, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE (?1 IS NULL OR subject_nhs = ?1)
           AND (?2 IS NULL OR actor_id = ?2)
           AND (?3 IS NULL OR actor_org = ?3)
           AND (?4 IS NULL OR substr(action, 1, length(?4)) = ?4)
           AND (?5 IS NULL OR time >= ?5)
           AND (?6 IS NULL OR time <= ?6)
           AND (?7 IS NULL OR seq < ?7)
         ORDER BY seq DESC LIMIT ?8"
    ))?;
    let mut rows = stmt.query(params![
        q.subject_nhs.map(|n| n.digits()),
        q.actor_id,
        q.organisation,
        q.action_prefix,
        q.from.map(ts),
        q.to.map(ts),
        q.before_seq.map(|s| s as i64),
        i64::from(q.limit)
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?.0);
    }
    Ok(out)
}

/// Walks the chain from the first entry: sequence numbers must run 1, 2, 3… with no gap, each
/// entry must name its predecessor's hash and hash to what it says, and the head must point at
/// the last entry.
pub fn verify(conn: &Connection) -> StoreResult<AuditVerification> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_owned();
    while let Some(r) = rows.next()? {
        let (rec, stored_prev) = match from_row(r) {
            Ok(x) => x,
            Err(e) => {
                let seq = r.get::<_, i64>(0).unwrap_or(-1);
                return Ok(AuditVerification::Broken {
                    seq: seq.max(0) as u64,
                    problem: format!("entry cannot be read: {e}"),
                });
            }
        };
        if rec.seq != expected_seq {
            return Ok(AuditVerification::Broken {
                seq: expected_seq,
                problem: format!("entry {expected_seq} is missing (next is {})", rec.seq),
            });
        }
        if stored_prev != prev_hash {
            return Ok(AuditVerification::Broken {
                seq: rec.seq,
                problem:
                    "does not follow the previous entry (deleted, inserted or reordered entries)"
                        .into(),
            });
        }
        if entry_hash(&prev_hash, rec.seq, &rec.entry) != rec.hash {
            return Ok(AuditVerification::Broken {
                seq: rec.seq,
                problem: "content does not match its hash (edited entry)".into(),
            });
        }
        prev_hash = rec.hash;
        expected_seq += 1;
    }
    let entries = expected_seq - 1;
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match head {
        None if entries == 0 => Ok(AuditVerification::Intact {
            entries,
            head_seq: 0,
            head_hash: GENESIS.to_owned(),
        }),
        Some((seq, hash)) if seq as u64 == entries && hash == prev_hash => Ok(AuditVerification::Intact {
            entries,
            head_seq: entries,
            head_hash: hash,
        }),
        Some((seq, _)) => Ok(AuditVerification::Broken {
            seq: seq as u64,
            problem: format!("the chain head names entry {seq} but the log ends at {entries} (entries removed from the end)"),
        }),
        None => Ok(AuditVerification::Broken {
            seq: entries,
            problem: "the chain head is missing".into(),
        }),
    }
}
