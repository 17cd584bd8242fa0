//! Escalation (docs/WORKFLOW.md, "The LA work queue"): an actionable notification left
//! unacknowledged past the deadline raises one `escalation` notification to its LA, delivered
//! like any other (API, SSE, webhooks, MESH), written with its audit entry in one transaction.
//! Run from the server's housekeeping with the service clock; several servers may run it at once
//! (the store marks each notification escalated at most once). A work item of repeat lookups
//! raises one escalation, for its first notification.

use crate::lookup::payload_time;
use chrono::{DateTime, Duration, Utc};
use cpis_domain::{AuditActor, AuditEntry, NewNotification, Notification, NotificationKind};
use cpis_store::{Store, StoreResult};
use serde_json::{json, Value};

/// Most notifications escalated per run (the next run takes the rest).
const BATCH: u32 = 200;

/// Who escalations are audited as.
fn system() -> AuditActor {
    AuditActor {
        id: "cpis:escalation".into(),
        name: "cpis escalation".into(),
        organisation: None,
        role: "system".into(),
    }
}

/// The escalation notification for `n`, overdue since `deadline` after its creation.
pub fn escalation_for(n: &Notification, now: DateTime<Utc>, deadline: Duration) -> NewNotification {
    let id = crate::lookup::ordered_id();
    let original: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
    let payload = json!({
        "id": id,
        "kind": NotificationKind::Escalation.code(),
        "la": n.la,
        "created_at": payload_time(now),
        "overdue": {
            "id": n.id,
            "kind": n.kind.code(),
            "cursor": n.seq.to_string(),
            "created_at": payload_time(n.created_at),
            "deadline_hours": deadline.num_minutes() as f64 / 60.0,
            "assigned_to": n.assigned_to,
        },
        "child": original.get("child"),
        "nhs_number": original.get("nhs_number"),
        "access": original.get("access"),
    });
    NewNotification {
        id,
        la: n.la.clone(),
        kind: NotificationKind::Escalation,
        created_at: now,
        payload: payload.to_string(),
    }
}

/// Escalates every notification overdue at `now` that is not yet escalated; returns how many
/// this call escalated (another server may have taken some).
/// A work item's repeat lookups (within `repeat_window` of its first, docs/WORKFLOW.md) are
/// marked escalated with it: an item raises one escalation, however many lookups it collapses.
pub fn escalate_overdue(
    store: &dyn Store,
    now: DateTime<Utc>,
    deadline: Duration,
    repeat_window: Duration,
) -> StoreResult<usize> {
    let mut escalated = 0;
    loop {
        let due = store.overdue_unescalated(now - deadline, BATCH)?;
        let mut this_round = 0;
        for n in &due {
            let escalation = escalation_for(n, now, deadline);
            let audit =
                AuditEntry::new(now, system(), "notification.escalate", None).detail(format!(
                    "notification {} ({}) unacknowledged past the deadline: escalation {}",
                    n.id, n.la, escalation.id
                ));
            if store.escalate(&n.id, n.created_at + repeat_window, &escalation, &audit)? {
                this_round += 1;
            }
        }
        escalated += this_round;
        if (due.len() as u32) < BATCH || this_round == 0 {
            return Ok(escalated);
        }
    }
}
