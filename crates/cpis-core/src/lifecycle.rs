//! Lifecycle of the register (SPEC rules 1 and 9): demographics changes move records to
//! replacement NHS numbers and tell the owning LAs; the retention job purges plans past their
//! visibility window.

use chrono::SecondsFormat;
use cpis_auth::capability::Admin;
use cpis_domain::{
    AuditEntry, Clock, DemographicStatus, Demographics, NewNotification, NotificationKind,
    VisibilityPolicy,
};
use cpis_store::{Store, StoreError};
use serde_json::json;

/// What applying a change file did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangesReport {
    pub entries: usize,
    /// Superseded numbers whose records moved to the replacement.
    pub superseded_with_records: usize,
    pub records_moved: usize,
    /// Numbers newly inactive that some LA holds records for.
    pub inactive_with_records: usize,
    pub notifications: usize,
}

/// Applies a demographics change file in one transaction: the index is updated; records held
/// against a newly superseded number move to its replacement and each owning LA is sent an
/// `inactive-nhs-number` notification; a newly inactive number notifies its LAs without moving.
/// Applying the same file again changes nothing and notifies nobody.
pub fn apply_demographic_changes(
    store: &dyn Store,
    clock: &dyn Clock,
    cap: &Admin,
    changes: &[Demographics],
) -> Result<ChangesReport, StoreError> {
    let now = clock.now();
    let mut report = ChangesReport {
        entries: changes.len(),
        ..Default::default()
    };
    let mut tx = store.begin_changes()?;
    for change in changes {
        let before = tx.demographics(change.nhs_number)?;
        tx.upsert_demographics(change, now)?;
        let (replacement, moved_las) = match change.status {
            DemographicStatus::Active => continue,
            DemographicStatus::Superseded(new) => {
                let records = tx.records_for(change.nhs_number)?;
                if records.is_empty() {
                    continue;
                }
                let las = tx.move_records(change.nhs_number, new, now)?;
                report.superseded_with_records += 1;
                report.records_moved += las.len();
                (Some(new), records)
            }
            DemographicStatus::Inactive => {
                if before.is_some_and(|b| b.status == DemographicStatus::Inactive) {
                    continue;
                }
                let records = tx.records_for(change.nhs_number)?;
                if records.is_empty() {
                    continue;
                }
                report.inactive_with_records += 1;
                (None, records)
            }
        };
        for record in &moved_las {
            let id = crate::lookup::ordered_id();
            let payload = json!({
                "id": id,
                "kind": NotificationKind::InactiveNhsNumber.code(),
                "la": record.la,
                "created_at": now.to_rfc3339_opts(SecondsFormat::Millis, true),
                "nhs_number": change.nhs_number,
                "status": change.status.code(),
                "replacement_nhs_number": replacement,
                "records_moved": replacement.is_some(),
                "local_id": record.local_id,
            });
            tx.insert_notification(&NewNotification {
                id,
                la: record.la.clone(),
                kind: NotificationKind::InactiveNhsNumber,
                created_at: now,
                payload: payload.to_string(),
            })?;
            report.notifications += 1;
        }
        tx.append_audit(
            &AuditEntry::new(
                now,
                cap.actor().clone(),
                format!("demographics.{}", change.status.code()),
                None,
            )
            .about(change.nhs_number)
            .detail(match replacement {
                Some(new) => format!("records of {} LA(s) moved to {new}", moved_las.len()),
                None => format!("{} LA(s) notified; records left in place", moved_las.len()),
            }),
        )?;
    }
    tx.append_audit(&AuditEntry::new(now, cap.actor().clone(), "demographics.apply-changes", None).detail(format!(
            "{} entries; {} superseded numbers moved {} records; {} inactive numbers; {} notifications",
            report.entries, report.superseded_with_records, report.records_moved, report.inactive_with_records, report.notifications
        )))?;
    tx.commit()?;
    Ok(report)
}

/// What the retention job found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub dry_run: bool,
    /// Plans past their visibility window.
    pub plans_due: u64,
    pub plans_deleted: u64,
    pub records_deleted: u64,
}

/// Deletes plans past their visibility window and the records left with none (the audit keeps
/// their history). With `dry_run`, only counts.
pub fn purge(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &VisibilityPolicy,
    cap: &Admin,
    dry_run: bool,
) -> Result<PurgeReport, StoreError> {
    let today = clock.today();
    let due: Vec<_> = store
        .purgeable_plans()?
        .into_iter()
        .filter(|(_, _, plan)| !policy.visibility(plan, today).is_visible())
        .collect();
    let mut report = PurgeReport {
        dry_run,
        plans_due: due.len() as u64,
        ..Default::default()
    };
    if dry_run {
        return Ok(report);
    }
    let audit =
        AuditEntry::new(clock.now(), cap.actor().clone(), "retention.purge", None).detail(format!(
            "{} plans past their window (ended plans {} days, UCPPs {} days)",
            due.len(),
            policy.ended_plan_days,
            policy.ucpp_days
        ));
    let (plans, records) = store.purge(&due, &audit)?;
    report.plans_deleted = plans;
    report.records_deleted = records;
    Ok(report)
}
