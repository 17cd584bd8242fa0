//! Searching the audit trail, as the admin API (`GET /api/v1/audit`) and the web page (`/audit`)
//! both do. Searching is itself audited ("audit the auditor"): the `audit.search` entry, with the
//! NHS number searched for as its subject, is written before anything is read, and a search
//! whose entry cannot be written is not run. An [`AuditTrail`] is made only from an
//! [`Auditor`] capability.

use chrono::{DateTime, Utc};
use cpis_auth::capability::Auditor;
use cpis_domain::{AuditEntry, AuditOutcome, AuditRecord};
use cpis_store::{AuditQuery, AuditVerification, Store, StoreResult};

/// How a search is written to the audit.
pub struct SearchNote {
    pub now: DateTime<Utc>,
    pub trace_id: Option<String>,
    /// The filters in a sentence (never debug output, never the NHS number: that is the entry's
    /// subject).
    pub detail: String,
}

/// A page of results: entries newest first, and the `before` cursor for the next page when the
/// trail may go on.
#[derive(Debug)]
pub struct Found {
    pub entries: Vec<AuditRecord>,
    pub next_before: Option<u64>,
}

/// The audit trail, for an auditor.
pub struct AuditTrail<'a> {
    store: &'a dyn Store,
    cap: &'a Auditor,
}

impl<'a> AuditTrail<'a> {
    pub fn new(store: &'a dyn Store, cap: &'a Auditor) -> Self {
        AuditTrail { store, cap }
    }

    fn audit(&self, query: &AuditQuery, note: SearchNote) -> StoreResult<()> {
        let entry = AuditEntry::new(
            note.now,
            self.cap.audit_actor().clone(),
            "audit.search",
            note.trace_id,
        )
        .about(query.subject_nhs)
        .detail(note.detail);
        self.store.append_audit(&entry)
    }

    /// Audits the search, then reads one batch of at most `query.limit` entries; `next_before`
    /// is set when the batch is full.
    pub fn search(&self, query: &AuditQuery, note: SearchNote) -> StoreResult<Found> {
        self.audit(query, note)?;
        let entries = self.store.audit_search(query)?;
        let next_before = (entries.len() == query.limit as usize)
            .then(|| entries.last().map(|r| r.seq))
            .flatten();
        Ok(Found {
            entries,
            next_before,
        })
    }

    /// Audits the search, then reads batches of `query.limit` until `page_size` entries with
    /// `outcome` (any, when `None`) are found or `scan_limit` entries were read (the store's
    /// query has no outcome filter).
    pub fn search_page(
        &self,
        query: AuditQuery,
        outcome: Option<AuditOutcome>,
        page_size: usize,
        scan_limit: usize,
        note: SearchNote,
    ) -> StoreResult<Found> {
        self.audit(&query, note)?;
        let mut q = query;
        let mut entries = Vec::new();
        let mut scanned = 0usize;
        loop {
            let batch = self.store.audit_search(&q)?;
            let full = batch.len() == q.limit as usize;
            for rec in batch {
                scanned += 1;
                let seq = rec.seq;
                if outcome.is_none_or(|o| rec.entry.outcome == o) {
                    entries.push(rec);
                }
                if entries.len() == page_size || scanned >= scan_limit {
                    return Ok(Found {
                        entries,
                        next_before: (seq > 1).then_some(seq),
                    });
                }
                q.before_seq = Some(seq);
            }
            if !full {
                return Ok(Found {
                    entries,
                    next_before: None,
                });
            }
        }
    }

    /// Recomputes the whole chain.
    pub fn verify(&self) -> StoreResult<AuditVerification> {
        self.store.audit_verify()
    }
}
