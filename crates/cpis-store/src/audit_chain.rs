//! The audit hash chain, shared by every backend: each entry's hash covers the previous hash and
//! the entry's fields in a fixed, unambiguous encoding.

use cpis_domain::AuditEntry;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash, the sequence number and every field, each length-prefixed
/// (so no two different entries encode alike).
pub fn entry_hash(prev_hash: &str, seq: u64, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let mut field = |s: Option<&str>| match s {
        None => h.update(b"\xff"),
        Some(s) => {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    };
    field(Some(prev_hash));
    field(Some(&seq.to_string()));
    field(Some(&crate::sql::time_text(e.time)));
    field(Some(&e.actor.id));
    field(Some(&e.actor.name));
    field(e.actor.organisation.as_deref());
    field(Some(&e.actor.role));
    field(Some(&e.action));
    field(e.subject_nhs.map(|n| n.digits()).as_deref());
    field(e.trace_id.as_deref());
    field(Some(e.outcome.code()));
    field(e.detail.as_deref());
    hex::encode(h.finalize())
}

/// What `cpis audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum AuditVerification {
    /// Every entry checks out; the newest is `head_seq` with hash `head_hash`.
    Intact {
        entries: u64,
        head_seq: u64,
        head_hash: String,
    },
    /// The first problem found.
    Broken { seq: u64, problem: String },
}
