//! Writing a refusal to the audit. The caller is refusing someone whatever happens, so a failure
//! to write the entry does not change the answer, but it is never dropped silently: it is logged
//! as an error (without personal data) for the operator.

use crate::state::AppState;
use cpis_domain::AuditEntry;

/// Appends `entry` (a denial, a throttle, an alert) on a blocking thread.
pub async fn audit(state: &AppState, entry: AuditEntry) {
    let action = entry.action.clone();
    let store = state.store.clone();
    let failed = match tokio::task::spawn_blocking(move || store.append_audit(&entry)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    tracing::error!(error = %failed, action, "could not write a refusal to the audit");
}
