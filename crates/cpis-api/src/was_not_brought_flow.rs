//! One "was not brought" report as every channel makes it (the FHIR API's `POST Appointment` and
//! the clinician's web form): the anomaly throttle (a report, like a lookup, tells whether a child
//! has a plan), the report in `cpis-core` (notifications and audit in one transaction), and the
//! commit published so the LAs' streams and webhooks pick the notifications up at once.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use cpis_auth::capability::ReportWasNotBrought;
use cpis_core::was_not_brought::{self, Reported};
use cpis_domain::WasNotBrought;

pub async fn report(
    state: &AppState,
    caller: &Caller,
    cap: ReportWasNotBrought,
    report: WasNotBrought,
    trace_id: &str,
) -> Result<Reported, ApiError> {
    let nhs = report.nhs_number();
    crate::lookup_flow::admit(state, caller, nhs, trace_id).await?;
    let store = state.store.clone();
    let clock = state.clock.clone();
    let policy = *state.lookups.policy();
    let trace = Some(trace_id.to_owned());
    let reported = tokio::task::spawn_blocking(move || {
        was_not_brought::report(
            store.as_ref(),
            clock.as_ref(),
            &policy,
            &cap,
            &report,
            trace,
        )
    })
    .await??;
    if matches!(reported, Reported::Sent { .. }) {
        state.lookups.commits().publish();
    }
    crate::lookup_flow::learn(
        state,
        caller,
        nhs,
        matches!(reported, Reported::Sent { .. }),
        trace_id,
    )
    .await;
    Ok(reported)
}
