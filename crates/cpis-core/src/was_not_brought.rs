//! "Was not brought" (docs/WORKFLOW.md): a scheduled care setting reports that a child was not
//! brought to an appointment. Each LA holding a plan for the child that a lookup would show gets
//! one `was-not-brought` notification; the notifications and the audit entry commit together.
//! A child with no visible plan is told to the reporter as exactly that (what a lookup would
//! show them) and nothing but the audit entry is written.

use crate::lookup::{actor, ordered_id, payload_time, ChildJson};
use chrono::{DateTime, Utc};
use cpis_auth::capability::ReportWasNotBrought;
use cpis_domain::lookup::{visible_records, VisibleRecord};
use cpis_domain::{
    AuditEntry, AuditOutcome, Clock, NewNotification, NotificationKind, OdsCode, VisibilityPolicy,
    WasNotBrought,
};
use cpis_store::{Store, StoreError};
use serde_json::json;

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Sent: the report's id (the notifications carry it), when it was taken, and the LAs told.
    Sent {
        id: String,
        at: DateTime<Utc>,
        notified: Vec<OdsCode>,
    },
    /// The child has no plan a lookup would show: nobody was told.
    NoVisiblePlan,
}

/// Takes a report: reads the child's records, then in one transaction writes a notification to
/// each LA with a visible plan and the audit entry (`was-not-brought.report`, or
/// `was-not-brought.no-plan` when there is none).
pub fn report(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &VisibilityPolicy,
    cap: &ReportWasNotBrought,
    report: &WasNotBrought,
    trace_id: Option<String>,
) -> Result<Reported, StoreError> {
    let now = clock.now();
    let nhs = report.nhs_number();
    // Read before the write transaction, as a lookup's view is (`crate::lookup`).
    let records = visible_records(store.records_for(nhs)?, policy, now.date_naive());
    let mut tx = store.begin_lookups()?;
    let audit = AuditEntry::new(now, actor(cap.accessor()), "was-not-brought", trace_id).about(nhs);
    if records.is_empty() {
        tx.append_audit(
            &AuditEntry {
                action: "was-not-brought.no-plan".into(),
                ..audit
            }
            .outcome(AuditOutcome::Failure)
            .detail("no visible plan: nobody told"),
        )?;
        tx.commit()?;
        return Ok(Reported::NoVisiblePlan);
    }
    let id = ordered_id();
    let mut notified = Vec::with_capacity(records.len());
    for visible in &records {
        let notification_id = ordered_id();
        tx.insert_notification(&NewNotification {
            payload: payload(&notification_id, &id, visible, cap, report, now).to_string(),
            id: notification_id,
            la: visible.record.la.clone(),
            kind: NotificationKind::WasNotBrought,
            created_at: now,
        })?;
        notified.push(visible.record.la.clone());
    }
    let las: Vec<&str> = notified.iter().map(OdsCode::as_str).collect();
    tx.append_audit(
        &AuditEntry {
            action: "was-not-brought.report".into(),
            ..audit
        }
        .detail(format!("report {id}; notified {}", las.join(", "))),
    )?;
    tx.commit()?;
    Ok(Reported::Sent {
        id,
        at: now,
        notified,
    })
}

/// The body of a `was-not-brought` notification: the LA's own record of the child, the missed
/// appointment, the reporting setting and who reported.
fn payload(
    id: &str,
    report_id: &str,
    visible: &VisibleRecord,
    cap: &ReportWasNotBrought,
    report: &WasNotBrought,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let a = cap.accessor();
    json!({
        "id": id,
        "kind": NotificationKind::WasNotBrought.code(),
        "la": visible.record.la,
        "created_at": payload_time(now),
        "child": ChildJson::of(visible),
        "appointment": {
            "id": report_id,
            "start": payload_time(report.start()),
            "end": payload_time(report.end()),
            "description": report.description(),
        },
        "setting": {
            "ods_code": a.organisation,
            "name": a.organisation_name,
            "setting_type": cap.setting_type(),
        },
        "reported_by": {
            "user_id": a.user_id,
            "user_name": a.user_name,
            "role": a.role,
        },
    })
}
