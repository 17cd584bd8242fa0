//! The hash-chained audit trail. The chain and its hashing are shared with SQLite
//! ([`crate::audit_chain`]); here appenders lock the `audit_head` row so that, across servers,
//! each entry names the one before it.

use super::convert::{count, parse_nhs, ts};
use super::pool::Conn;
use crate::audit_chain::{entry_hash, AuditVerification, GENESIS};
use crate::{AuditQuery, StoreError, StoreResult};
use cpis_domain::{AuditActor, AuditEntry, AuditOutcome, AuditRecord};
use postgres::Row;

/// The chain head as a transaction sees it: read and locked (`FOR UPDATE`, held until the
/// transaction ends) at the first append, advanced by each append, written back once before the
/// transaction commits (a group of lookups appends many entries).
#[derive(Default)]
pub struct Head(Option<(i64, String)>);

impl Head {
    fn load(&mut self, conn: &mut Conn) -> StoreResult<(i64, String)> {
        if let Some(h) = &self.0 {
            return Ok(h.clone());
        }
        const SQL: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
        let row = match conn.query_opt(SQL, &[])? {
            Some(r) => r,
            None => {
                // The migration writes the genesis head; recreate it if it went missing (the
                // log, if not empty, then fails verification, as it should).
                conn.execute(
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
                    &[&GENESIS],
                )?;
                conn.query_one(SQL, &[])?
            }
        };
        let head: (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        self.0 = Some(head.clone());
        Ok(head)
    }

    /// Writes the head row if anything was appended. Call before COMMIT.
    pub fn store(&mut self, conn: &mut Conn) -> StoreResult<()> {
        if let Some((seq, hash)) = &self.0 {
            conn.execute(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
                &[seq, hash],
            )?;
        }
        Ok(())
    }
}

/// Appends inside the caller's transaction; `head.store` must run before it commits.
pub fn append(conn: &mut Conn, head: &mut Head, e: &AuditEntry) -> StoreResult<()> {
    let (prev_seq, prev_hash) = head.load(conn)?;
    let seq = count(prev_seq) + 1;
    let hash = entry_hash(&prev_hash, seq, e);
    let seq = seq as i64;
    conn.execute(
        "INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                                trace_id, outcome, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &seq,
            &ts(e.time),
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
    head.0 = Some((seq, hash));
    Ok(())
}

/// Appends in the caller's transaction and writes the head at once (a one-entry transaction).
pub fn append_alone(conn: &mut Conn, e: &AuditEntry) -> StoreResult<()> {
    let mut head = Head::default();
    append(conn, &mut head, e)?;
    head.store(conn)
}

const COLUMNS: &str =
    "seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs, trace_id,
    outcome, detail, prev_hash, hash";

fn from_row(r: &Row) -> StoreResult<(AuditRecord, String)> {
    Ok((
        AuditRecord {
            seq: count(r.try_get(0)?),
            entry: AuditEntry {
                time: r.try_get(1)?,
                actor: AuditActor {
                    id: r.try_get(2)?,
                    name: r.try_get(3)?,
                    organisation: r.try_get(4)?,
                    role: r.try_get(5)?,
                },
                action: r.try_get(6)?,
                subject_nhs: r
                    .try_get::<_, Option<&str>>(7)?
                    .map(parse_nhs)
                    .transpose()?,
                trace_id: r.try_get(8)?,
                outcome: AuditOutcome::from_code(r.try_get(9)?)
                    .ok_or_else(|| StoreError::corrupt("audit outcome"))?,
                detail: r.try_get(10)?,
            },
            hash: r.try_get(12)?,
        },
        r.try_get(11)?,
    ))
}

pub fn search(conn: &mut Conn, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
    conn.query(
        &format!(
            "SELECT {COLUMNS} FROM audit_log
             WHERE ($1::text IS NULL OR subject_nhs = $1::text)
               AND ($2::text IS NULL OR actor_id = $2::text)
               AND ($3::text IS NULL OR actor_org = $3::text)
               AND ($4::text IS NULL OR starts_with(action, $4::text))
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
            &q.from.map(ts),
            &q.to.map(ts),
            &q.before_seq.map(|s| s as i64),
            &i64::from(q.limit),
        ],
    )?
    .iter()
    .map(|r| Ok(from_row(r)?.0))
    .collect()
}

/// Walks the chain from the first entry: sequence numbers must run 1, 2, 3… with no gap, each
/// entry must name its predecessor's hash and hash to what it says, and the head must point at
/// the last entry. Reads in pages, in the caller's (snapshot) transaction.
pub fn verify(conn: &mut Conn) -> StoreResult<AuditVerification> {
    const PAGE: i64 = 5_000;
    let mut expected_seq = 1u64;
    let mut prev_hash = GENESIS.to_owned();
    loop {
        let rows = conn.query(
            &format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2"),
            &[&(expected_seq as i64), &PAGE],
        )?;
        let page_len = rows.len();
        for r in &rows {
            let (rec, stored_prev) = match from_row(r) {
                Ok(x) => x,
                Err(e) => {
                    let seq = r.try_get::<_, i64>(0).unwrap_or(-1);
                    return Ok(AuditVerification::Broken {
                        seq: count(seq),
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
                    problem: "does not follow the previous entry (deleted, inserted or reordered entries)".into(),
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
        if (page_len as i64) < PAGE {
            break;
        }
    }
    // Entries below seq 1 are not part of the chain either.
    let stray: i64 = conn
        .query_one("SELECT count(*) FROM audit_log WHERE seq < 1", &[])?
        .try_get(0)?;
    if stray > 0 {
        return Ok(AuditVerification::Broken {
            seq: 0,
            problem: format!("{stray} entries carry a sequence number below 1"),
        });
    }
    let entries = expected_seq - 1;
    let head = conn.query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
    let head: Option<(i64, String)> = match head {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    };
    match head {
        None if entries == 0 => Ok(AuditVerification::Intact {
            entries,
            head_seq: 0,
            head_hash: GENESIS.to_owned(),
        }),
        Some((seq, hash)) if count(seq) == entries && seq >= 0 && hash == prev_hash => {
            Ok(AuditVerification::Intact {
                entries,
                head_seq: entries,
                head_hash: hash,
            })
        }
        Some((seq, _)) => Ok(AuditVerification::Broken {
            seq: count(seq),
            problem: format!(
                "the chain head names entry {seq} but the log ends at {entries} (entries removed from the end)"
            ),
        }),
        None => Ok(AuditVerification::Broken {
            seq: entries,
            problem: "the chain head is missing".into(),
        }),
    }
}
