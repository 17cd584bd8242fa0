//! Writing a refusal to the audit from a request handler: [`cpis_core::refusals::record`] on a
//! blocking thread (a failure to write the entry is logged, never dropped, and does not change the
//! answer).

use crate::state::AppState;
use cpis_domain::AuditEntry;

/// Appends `entry` (a denial, a throttle, an alert) on a blocking thread.
pub async fn audit(state: &AppState, entry: AuditEntry) {
    let action = entry.action.clone();
    let store = state.store.clone();
    let written =
        tokio::task::spawn_blocking(move || cpis_core::refusals::record(store.as_ref(), &entry))
            .await;
    if let Err(e) = written {
        cpis_core::refusals::failed(&action, &e);
    }
}
