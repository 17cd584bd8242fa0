//! Signed checkpoints of the audit chain's head, kept outside the database.
//!
//! The hash chain alone proves that entries were not edited, deleted or reordered by someone who
//! cannot also rewrite the chain: anyone with write access to the database can delete a row,
//! recompute every later hash and the head, and `cpis audit verify` would say intact. A
//! checkpoint closes that gap. `cpis audit checkpoint` reads the head (sequence number and hash)
//! and appends it, with the time and an HMAC-SHA256 under a key that is not in the database, as
//! one JSON line to a file (or to standard output, for syslog). `cpis audit verify --checkpoint F`
//! then requires, for every line of F: a valid signature, and an entry at that sequence number
//! whose hash is the one signed. A database that was cut back (behind the checkpoint) or whose
//! chain was rebuilt (diverges from it) fails, however consistent it is in itself.
//!
//! What it cannot see: a change to entries written after the newest checkpoint. Checkpoint often
//! (docs/SECURITY.md: the threat model).

use chrono::{DateTime, SecondsFormat, Utc};
use cpis_store::{AuditQuery, AuditVerification, Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One signed head.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    pub taken_at: DateTime<Utc>,
    /// HMAC-SHA256 (hex) over the fields above, under the checkpoint key.
    pub mac: String,
}

/// The checkpoint key: at least 32 bytes, read from a file or the environment, never from the
/// database it protects.
pub struct CheckpointKey(Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint key must be at least 32 bytes (give a file of random bytes, e.g. `head -c 32 /dev/urandom`)")]
    ShortKey,
    #[error("the audit trail is empty: there is no head to checkpoint")]
    Empty,
    #[error("the audit chain is broken at entry {seq}: {problem}")]
    Broken { seq: u64, problem: String },
    #[error("checkpoint line {line} cannot be read: {why}")]
    Unreadable { line: usize, why: String },
    #[error("checkpoint line {line} (entry {seq}) has a wrong signature: written with another key, or edited")]
    BadSignature { line: usize, seq: u64 },
    #[error("the database is behind checkpoint line {line}: entry {seq} was signed on {taken_at}, but the audit trail ends at entry {head}")]
    Behind {
        line: usize,
        seq: u64,
        head: u64,
        taken_at: String,
    },
    #[error("the database diverges from checkpoint line {line}: entry {seq} does not have the hash signed on {taken_at} (the chain was rewritten)")]
    Diverges {
        line: usize,
        seq: u64,
        taken_at: String,
    },
    #[error("the checkpoint file holds no checkpoint")]
    NoCheckpoint,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckpointKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, CheckpointError> {
        if bytes.len() < 32 {
            return Err(CheckpointError::ShortKey);
        }
        Ok(CheckpointKey(bytes))
    }

    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "cannot fail: HMAC takes any key length"
    )]
    fn mac(&self, seq: u64, hash: &str, taken_at: &DateTime<Utc>) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"cpis-audit-checkpoint/1\n");
        mac.update(seq.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(hash.as_bytes());
        mac.update(b"\n");
        mac.update(
            taken_at
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .as_bytes(),
        );
        mac
    }

    fn sign(&self, seq: u64, hash: String, taken_at: DateTime<Utc>) -> Checkpoint {
        let mac = hex::encode(self.mac(seq, &hash, &taken_at).finalize().into_bytes());
        Checkpoint {
            seq,
            hash,
            taken_at,
            mac,
        }
    }

    fn signed_by_me(&self, c: &Checkpoint) -> bool {
        let Ok(sent) = hex::decode(&c.mac) else {
            return false;
        };
        self.mac(c.seq, &c.hash, &c.taken_at)
            .verify_slice(&sent)
            .is_ok()
    }
}

/// Verifies the whole chain, then signs its head.
pub fn take(
    store: &dyn Store,
    key: &CheckpointKey,
    now: DateTime<Utc>,
) -> Result<Checkpoint, CheckpointError> {
    match store.audit_verify()? {
        AuditVerification::Intact { entries: 0, .. } => Err(CheckpointError::Empty),
        AuditVerification::Intact {
            head_seq,
            head_hash,
            ..
        } => Ok(key.sign(head_seq, head_hash, now)),
        AuditVerification::Broken { seq, problem } => Err(CheckpointError::Broken { seq, problem }),
    }
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointsHeld {
    pub checkpoints: usize,
    /// The newest checkpointed entry.
    pub newest_seq: u64,
}

/// Checks the database against every checkpoint line in `text` (JSON lines; blank lines are
/// skipped). The chain must already have been verified intact by the caller
/// (`Store::audit_verify`), whose head is `head`: this reads only the checkpointed entries.
pub fn check(
    store: &dyn Store,
    key: &CheckpointKey,
    text: &str,
    head: u64,
) -> Result<CheckpointsHeld, CheckpointError> {
    let mut held = CheckpointsHeld {
        checkpoints: 0,
        newest_seq: 0,
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let c: Checkpoint = serde_json::from_str(raw).map_err(|e| CheckpointError::Unreadable {
            line,
            why: e.to_string(),
        })?;
        if !key.signed_by_me(&c) {
            return Err(CheckpointError::BadSignature { line, seq: c.seq });
        }
        let taken_at = c.taken_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        if c.seq > head {
            return Err(CheckpointError::Behind {
                line,
                seq: c.seq,
                head,
                taken_at,
            });
        }
        let at = store.audit_search(&AuditQuery {
            before_seq: Some(c.seq + 1),
            limit: 1,
            ..Default::default()
        })?;
        if at
            .first()
            .is_none_or(|r| r.seq != c.seq || r.hash != c.hash)
        {
            return Err(CheckpointError::Diverges {
                line,
                seq: c.seq,
                taken_at,
            });
        }
        held.checkpoints += 1;
        held.newest_seq = held.newest_seq.max(c.seq);
    }
    if held.checkpoints == 0 {
        return Err(CheckpointError::NoCheckpoint);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field() {
        let key = CheckpointKey::new(vec![7; 32]).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = key.sign(42, "ab".repeat(32), at);
        assert!(key.signed_by_me(&c));
        for forged in [
            Checkpoint {
                seq: 41,
                ..c.clone()
            },
            Checkpoint {
                hash: "cd".repeat(32),
                ..c.clone()
            },
            Checkpoint {
                taken_at: at + chrono::Duration::seconds(1),
                ..c.clone()
            },
        ] {
            assert!(!key.signed_by_me(&forged), "{forged:?}");
        }
        let other = CheckpointKey::new(vec![8; 32]).unwrap();
        assert!(!other.signed_by_me(&c));
        assert!(matches!(
            CheckpointKey::new(vec![1; 31]),
            Err(CheckpointError::ShortKey)
        ));
    }
}
