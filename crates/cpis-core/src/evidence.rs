//! The evidence export (docs/WORKFLOW.md "Evidence export"): an LA's safeguarding team downloads
//! a child's whole access history for a case conference. Only for a child the LA holds a record
//! for; every export, and every refusal, is audited. The history is read a page at a time so a
//! long one is never held in memory at once.

use cpis_auth::capability::LaEvidence;
use cpis_domain::{Access, AuditEntry, Clock, NhsNumber};
use cpis_store::{Store, StoreError, StoredRecord};

/// Accesses read per page.
pub const PAGE: u32 = 500;

/// An export the LA may make: its own record of the child.
pub struct Export {
    pub nhs: NhsNumber,
    pub record: StoredRecord,
}

/// Starts an export in `format` (`csv` or `print`, for the audit): the LA's own record of the
/// child, or `None` when it holds none (another LA's child, or nobody's). Audited either way
/// (`evidence.export`, denied when refused).
pub fn open(
    store: &dyn Store,
    clock: &dyn Clock,
    cap: &LaEvidence,
    nhs: NhsNumber,
    format: &str,
    trace_id: Option<String>,
) -> Result<Option<Export>, StoreError> {
    let record = store
        .records_for(nhs)?
        .into_iter()
        .find(|r| &r.la == cap.la());
    let entry = AuditEntry::new(
        clock.now(),
        cap.actor().clone(),
        "evidence.export",
        trace_id,
    )
    .about(nhs);
    match record {
        Some(record) => {
            store.append_audit(&entry.detail(format!("access history as {format}")))?;
            Ok(Some(Export { nhs, record }))
        }
        None => {
            store.append_audit(&entry.denied().detail(format!(
                "access history as {format}: the LA holds no record of this child"
            )))?;
            Ok(None)
        }
    }
}

impl Export {
    /// The page of the history after cursor `after` (0: from the first), oldest first, each
    /// access with its cursor; empty at the end.
    pub fn page(&self, store: &dyn Store, after: u64) -> Result<Vec<(u64, Access)>, StoreError> {
        store.access_history_page(self.nhs, after, PAGE)
    }
}
