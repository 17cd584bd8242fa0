//! The hash-chained audit trail ([`crate::audit_chain`] hashes). Appenders read the
//! `audit_head` row `FOR UPDATE` (held until the transaction ends on PostgreSQL; SQLite's one
//! writer excludes the rest), so each entry names the one before it.

use super::{big, Db, Row};
use crate::audit_chain::{entry_hash, AuditVerification, GENESIS};
use crate::{AuditQuery, StoreResult};
use cpis_domain::{AuditActor, AuditEntry, AuditRecord};

/// The chain head as a transaction sees it: read and locked at the first append, advanced by each
/// append, written back once before the transaction commits (a group of lookups appends many).
#[derive(Default)]
pub struct Head(Option<(i64, String)>);

const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
/// The head read and locked until the transaction ends.
pub(crate) const LOCKED_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";

impl Head {
    /// A head the caller has already read with [`LOCKED_HEAD`] in this transaction.
    pub(crate) fn locked(seq: i64, hash: String) -> Head {
        Head(Some((seq, hash)))
    }

    fn load(&mut self, db: &mut dyn Db) -> StoreResult<(i64, String)> {
        if let Some(h) = &self.0 {
            return Ok(h.clone());
        }
        let row = match db.row(LOCKED_HEAD, &[])? {
            Some(r) => r,
            None => {
                // A new SQLite file starts without one; on PostgreSQL the migration writes it and
                // it is recreated if it went missing (the log, if not empty, then fails
                // verification, as it should).
                db.exec(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
                    &[&GENESIS],
                )?;
                db.one(LOCKED_HEAD, &[])?
            }
        };
        let head: (i64, String) = (row.get(0)?, row.get(1)?);
        self.0 = Some(head.clone());
        Ok(head)
    }

    /// Where the chain stands after this transaction's appends (`None` when it appended none).
    pub fn after(&self) -> Option<(i64, &str)> {
        self.0.as_ref().map(|(seq, hash)| (*seq, hash.as_str()))
    }

    /// Writes the head row if anything was appended. Call before COMMIT.
    pub fn store(&self, db: &mut dyn Db) -> StoreResult<()> {
        if let Some((seq, hash)) = &self.0 {
            db.exec(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                &[seq, hash],
            )?;
        }
        Ok(())
    }
}

/// An entry's place in the chain: its `seq`, the hash of the entry before it and its own.
pub struct Link {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// Gives `e` the next place in the chain and advances `head` past it, without writing the entry
/// (the caller inserts it, with `head.store`, before the transaction commits).
pub fn link(db: &mut dyn Db, head: &mut Head, e: &AuditEntry) -> StoreResult<Link> {
    let (prev_seq, prev_hash) = head.load(db)?;
    let seq = prev_seq.max(0) as u64 + 1;
    let hash = entry_hash(&prev_hash, seq, e);
    let seq = big(seq);
    head.0 = Some((seq, hash.clone()));
    Ok(Link {
        seq,
        prev_hash,
        hash,
    })
}

/// Appends inside the caller's transaction; `head.store` must run before it commits.
pub fn append(db: &mut dyn Db, head: &mut Head, e: &AuditEntry) -> StoreResult<()> {
    let Link {
        seq,
        prev_hash,
        hash,
    } = link(db, head, e)?;
    db.exec(
        "INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                                trace_id, outcome, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &seq,
            &e.time,
            &e.actor.id,
            &e.actor.name,
            &e.actor.organisation,
            &e.actor.role,
            &e.action,
            &e.subject_nhs.map(|n| n.digits()),
            &e.trace_id,
            &e.outcome.code(),
            &e.detail,
            &prev_hash,
            &hash,
        ],
    )?;
    Ok(())
}

/// Appends in the caller's transaction and writes the head at once (a one-entry transaction).
pub fn append_alone(db: &mut dyn Db, e: &AuditEntry) -> StoreResult<()> {
    let mut head = Head::default();
    append(db, &mut head, e)?;
    head.store(db)
}

const COLUMNS: &str =
    "seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs, trace_id,
    outcome, detail, prev_hash, hash";

fn from_row(r: &Row) -> StoreResult<(AuditRecord, String)> {
    Ok((
        AuditRecord {
            seq: r.get(0)?,
            entry: AuditEntry {
                time: r.get(1)?,
                actor: AuditActor {
                    id: r.get(2)?,
                    name: r.get(3)?,
                    organisation: r.get(4)?,
                    role: r.get(5)?,
                },
                action: r.get(6)?,
                subject_nhs: r.get(7)?,
                trace_id: r.get(8)?,
                outcome: r.get(9)?,
                detail: r.get(10)?,
            },
            hash: r.get(12)?,
        },
        r.get(11)?,
    ))
}

pub fn search(db: &mut dyn Db, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    db.list(
        &format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE ($1::text IS NULL OR subject_nhs = $1::text)
               AND ($2::text IS NULL OR actor_id = $2::text)
               AND ($3::text IS NULL OR actor_org = $3::text)
               AND ($4::text IS NULL OR substr(action, 1, length($4::text)) = $4::text)
               AND ($5::timestamptz IS NULL OR time >= $5::timestamptz)
               AND ($6::timestamptz IS NULL OR time <= $6::timestamptz)
               AND ($7::bigint IS NULL OR seq < $7::bigint)
             ORDER BY seq DESC LIMIT $8"
        ),
        &[
            &q.subject_nhs.map(|n| n.digits()),
            &q.actor_id,
            &q.organisation,
            &q.action_prefix,
            &q.from,
            &q.to,
            &q.before_seq.map(big),
            &i64::from(q.limit),
        ],
        |r| Ok(from_row(r)?.0),
    )
}

fn broken(seq: u64, problem: impl Into<String>) -> StoreResult<AuditVerification> {
    Ok(AuditVerification::Broken {
        seq,
        problem: problem.into(),
    })
}

/// Walks the chain from the first entry: sequence numbers must run 1, 2, 3… with no gap, each
/// entry must name its predecessor's hash and hash to what it says, and the head must point at
/// the last entry. Reads in pages, in the caller's snapshot.
pub fn verify(db: &mut dyn Db) -> StoreResult<AuditVerification> {
    const PAGE: i64 = 5_000;
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_owned();
    loop {
        let rows = db.rows(
            &format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2"),
            &[&big(expected_seq), &PAGE],
        )?;
        for r in &rows {
            let (rec, stored_prev) = match from_row(r) {
                Ok(x) => x,
                Err(e) => {
                    let seq = r.get::<u64>(0).unwrap_or(0);
                    return broken(seq, format!("entry cannot be read: {e}"));
                }
            };
            if rec.seq != expected_seq {
                return broken(
                    expected_seq,
                    format!("entry {expected_seq} is missing (next is {})", rec.seq),
                );
            }
            if stored_prev != prev_hash {
                return broken(
                    rec.seq,
                    "does not follow the previous entry (deleted, inserted or reordered entries)",
                );
            }
            if entry_hash(&prev_hash, rec.seq, &rec.entry) != rec.hash {
                return broken(rec.seq, "content does not match its hash (edited entry)");
            }
            prev_hash = rec.hash;
            expected_seq += 1;
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    // Entries below seq 1 are not part of the chain either.
    let stray = db.count("SELECT count(*) FROM audit_log WHERE seq < 1", &[])?;
    if stray > 0 {
        return broken(
            0,
            format!("{stray} entries carry a sequence number below 1"),
        );
    }
    let entries = expected_seq - 1;
    let head = match db.row(HEAD, &[])? {
        Some(r) => Some((r.get::<i64>(0)?, r.get::<String>(1)?)),
        None => None,
    };
    match head {
        None if entries == 0 => Ok(AuditVerification::Intact {
            entries,
            head_seq: 0,
            head_hash: GENESIS.to_owned(),
        }),
        Some((seq, hash)) if seq >= 0 && seq as u64 == entries && hash == prev_hash => {
            Ok(AuditVerification::Intact {
                entries,
                head_seq: entries,
                head_hash: hash,
            })
        }
        Some((seq, _)) => broken(
            seq.max(0) as u64,
            format!(
                "the chain head names entry {seq} but the log ends at {entries} (entries removed from the end)"
            ),
        ),
        None => broken(entries, "the chain head is missing"),
    }
}
