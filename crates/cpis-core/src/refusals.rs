//! Writing a refusal (a denial, a throttle, an alert) to the audit, for every channel. The caller
//! is refusing someone whatever happens, so a failure to write the entry does not change the
//! answer, but it is never dropped silently: it is logged as an error (the action only, no
//! personal data) for the operator.

use cpis_domain::AuditEntry;
use cpis_store::Store;

/// Appends `entry`; a failure is logged, not returned.
pub fn record(store: &dyn Store, entry: &AuditEntry) {
    if let Err(e) = store.append_audit(entry) {
        failed(&entry.action, &e);
    }
}

/// Logs a refusal that could not be written to the audit.
pub fn failed(action: &str, error: &dyn std::fmt::Display) {
    tracing::error!(error = %error, action, "could not write a refusal to the audit");
}
