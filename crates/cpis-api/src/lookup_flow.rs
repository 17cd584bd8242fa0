//! One lookup as every channel does it (FHIR API and web pages): the anomaly throttle, the
//! durable lookup in `cpis-core` (access, audit, notifications in one transaction), metrics, and
//! admin alerts. Channels only parse their input and render the result.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use cpis_auth::capability;
use cpis_core::anomaly::Anomaly;
use cpis_core::lookup::LookupResult;
use cpis_core::{AccessHistory, LookupRequest};
use cpis_domain::{AuditActor, AuditEntry, NhsNumber};

/// Looks one child up as `caller` (who holds `cap`). `requested_unscheduled`: the caller asked for
/// a notifying lookup; whether it notifies is decided in `cpis-core` from the capability and the
/// care setting too. `history`: whether the channel shows the access history.
pub async fn lookup(
    state: &AppState,
    caller: &Caller,
    cap: &capability::Lookup,
    nhs: NhsNumber,
    requested_unscheduled: bool,
    history: AccessHistory,
    trace_id: &str,
) -> Result<LookupResult, ApiError> {
    admit(state, caller, nhs, trace_id).await?;
    let started = std::time::Instant::now();
    let mut request =
        LookupRequest::new(cap, nhs, requested_unscheduled, Some(trace_id.to_owned()));
    if history == AccessHistory::NotShown {
        request = request.without_history();
    }
    let result = state.lookups.submit(request).answer().await?;
    state
        .metrics
        .lookup_commit_seconds
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .lookups
        .get_or_create(&crate::metrics::KindLabel {
            kind: result.access.kind.code().to_owned(),
        })
        .inc();
    learn(state, caller, nhs, !result.records.is_empty(), trace_id).await;
    Ok(result)
}

/// Before a lookup or a history search: the anomaly throttle. A refusal is audited with the
/// child it was for and answered 429 with `Retry-After`; the alert is raised once per episode.
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    nhs: NhsNumber,
    trace_id: &str,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    let principal = &caller.principal;
    let Err((until, started)) =
        state
            .anomaly
            .admit(principal.user_id(), principal.organisation().as_str(), now)
    else {
        return Ok(());
    };
    let actor = principal.audit_actor();
    if let Some(anomaly) = started {
        raise_alert(state, actor.clone(), &anomaly, Some(trace_id.to_owned())).await;
    }
    let entry = AuditEntry::new(now, actor, "lookup.throttled", Some(trace_id.to_owned()))
        .about(nhs)
        .denied()
        .detail(format!("throttled until {}", until.0.to_rfc3339()));
    crate::refusals::audit(state, entry).await;
    Err(ApiError::throttled(until.0, now))
}

/// After a lookup or a history search: the detector learns its pattern (`found`: the answer
/// revealed something) and raises an alert when one starts.
pub async fn learn(state: &AppState, caller: &Caller, nhs: NhsNumber, found: bool, trace_id: &str) {
    let principal = &caller.principal;
    if let Some(anomaly) = state
        .anomaly
        .record(principal.user_id(), nhs, found, state.clock.now())
    {
        raise_alert(
            state,
            principal.audit_actor(),
            &anomaly,
            Some(trace_id.to_owned()),
        )
        .await;
    }
}

/// An admin alert: written to the audit as `security.anomaly` (admins list these).
async fn raise_alert(
    state: &AppState,
    actor: AuditActor,
    anomaly: &Anomaly,
    trace_id: Option<String>,
) {
    tracing::warn!(anomaly = %anomaly, "lookup anomaly: identity throttled");
    let entry = AuditEntry::new(state.clock.now(), actor, "security.anomaly", trace_id)
        .denied()
        .detail(format!("{anomaly}; lookups paused"));
    crate::refusals::audit(state, entry).await;
}
