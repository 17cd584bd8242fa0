//! Lifecycle of the register (SPEC rules 1, 9 and 10): demographics changes move records to
//! replacement NHS numbers and tell the owning LAs, tell them of numbers invalidated for adoption
//! (records never move), and of babies born to mothers on an unborn child protection plan; the
//! birth-reminder job chases UCPPs past their expected delivery date; the retention job purges
//! plans past their visibility window.

use crate::lookup::payload_time;
use chrono::{DateTime, Utc};
use cpis_auth::capability::Admin;
use cpis_domain::lookup::visible_records;
use cpis_domain::{
    AuditActor, AuditEntry, Clock, DemographicStatus, Demographics, NewNotification,
    NotificationKind, Plan, PlanType, PlanVisibility, VisibilityPolicy,
};
use cpis_store::{ChangesTx, DueBirthReminder, Store, StoreError};
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
    /// Numbers newly invalidated for adoption that some LA holds records for.
    pub adoption_invalidated_with_records: usize,
    /// `birth` notifications sent (one per LA with a visible UCPP of the baby's mother).
    pub births_notified: usize,
    pub notifications: usize,
}

/// Applies a demographics change file in one transaction: the index is updated; records held
/// against a newly superseded number move to its replacement and each owning LA is sent an
/// `inactive-nhs-number` notification; a newly inactive number notifies its LAs without moving;
/// a number newly invalidated for adoption sends each LA holding it an `adoption-invalidation`
/// notification, moves nothing and hides its plans; an active newborn registration naming a
/// mother with a visible UCPP sends that UCPP's LA a `birth` notification.
/// Applying the same file again changes nothing and notifies nobody.
pub fn apply_demographic_changes(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &VisibilityPolicy,
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
            DemographicStatus::Active => {
                let sent = notify_birth(tx.as_mut(), policy, now, change)?;
                if sent > 0 {
                    report.births_notified += sent;
                    report.notifications += sent;
                    tx.append_audit(
                        &AuditEntry::new(now, cap.actor().clone(), "demographics.birth", None)
                            .about(change.nhs_number)
                            .detail(format!(
                                "newborn registered to a mother on an unborn child protection plan; {sent} LA(s) notified"
                            )),
                    )?;
                }
                continue;
            }
            DemographicStatus::InvalidatedAdoption => {
                if before.is_some_and(|b| b.status == DemographicStatus::InvalidatedAdoption) {
                    continue;
                }
                let records = tx.records_held(change.nhs_number)?;
                if records.is_empty() {
                    continue;
                }
                report.adoption_invalidated_with_records += 1;
                for record in &records {
                    let id = crate::lookup::ordered_id();
                    // Never a new number: that would link the birth and adoptive identities.
                    let payload = json!({
                        "id": id,
                        "kind": NotificationKind::AdoptionInvalidation.code(),
                        "la": record.la,
                        "created_at": payload_time(now),
                        "nhs_number": change.nhs_number,
                        "status": change.status.code(),
                        "local_id": record.local_id,
                        "records_moved": false,
                        "plans_shown": false,
                    });
                    tx.insert_notification(&NewNotification {
                        id,
                        la: record.la.clone(),
                        kind: NotificationKind::AdoptionInvalidation,
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
                    .detail(format!(
                        "{} LA(s) notified; records left in place and no longer shown; no new number kept",
                        records.len()
                    )),
                )?;
                continue;
            }
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
                "created_at": payload_time(now),
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
            "{} entries; {} superseded numbers moved {} records; {} inactive numbers; {} invalidated for adoption; {} births notified; {} notifications",
            report.entries, report.superseded_with_records, report.records_moved, report.inactive_with_records,
            report.adoption_invalidated_with_records, report.births_notified, report.notifications
        )))?;
    tx.commit()?;
    Ok(report)
}

fn plan_json(plan: &Plan, visibility: PlanVisibility) -> serde_json::Value {
    json!({
        "plan_type": plan.plan_type(),
        "start_date": plan.start(),
        "end_date": plan.end(),
        "expected_delivery_date": plan.expected_delivery(),
        "state": match visibility { PlanVisibility::Active => "active", _ => "ended" },
    })
}

/// A baby belongs to a mother's UCPP when born on or after the plan's start: a UCPP is made
/// before the birth, so an older sibling registered to the same mother does not count.
fn born_under(baby: &Demographics, plan: &Plan) -> bool {
    plan.plan_type() == PlanType::Ucpp && baby.date_of_birth >= plan.start()
}

/// Sends each LA with a visible UCPP of the registration's mother one `birth` notification
/// (once per LA and baby, however often the feed repeats it). Returns how many were sent.
fn notify_birth(
    tx: &mut dyn ChangesTx,
    policy: &VisibilityPolicy,
    now: DateTime<Utc>,
    baby: &Demographics,
) -> Result<usize, StoreError> {
    let Some(mother) = baby.mother_nhs_number else {
        return Ok(0);
    };
    let mut sent = 0;
    for visible in visible_records(tx.records_for(mother)?, policy, now.date_naive()) {
        let Some((plan, visibility)) = visible.plans.iter().find(|(p, _)| born_under(baby, p))
        else {
            continue;
        };
        let la = &visible.record.la;
        if !tx.mark_birth_notice(
            NotificationKind::Birth,
            la,
            baby.nhs_number,
            baby.date_of_birth,
            now,
        )? {
            continue;
        }
        let id = crate::lookup::ordered_id();
        let payload = json!({
            "id": id,
            "kind": NotificationKind::Birth.code(),
            "la": la,
            "created_at": payload_time(now),
            "baby": {
                "nhs_number": baby.nhs_number,
                "date_of_birth": baby.date_of_birth,
            },
            "mother": {
                "nhs_number": mother,
                "local_id": visible.record.local_id,
            },
            "plan": plan_json(plan, *visibility),
        });
        tx.insert_notification(&NewNotification {
            id,
            la: la.clone(),
            kind: NotificationKind::Birth,
            created_at: now,
            payload: payload.to_string(),
        })?;
        sent += 1;
    }
    Ok(sent)
}

/// Days after the expected delivery date a UCPP with no plan for the baby is reminded
/// (default of the config file's `birth_reminder_days`).
pub const BIRTH_REMINDER_DAYS: u32 = 14;

/// Who the birth-reminder job acts as in the audit.
fn housekeeping_actor() -> AuditActor {
    AuditActor {
        id: "cpis".into(),
        name: "cpis housekeeping".into(),
        organisation: None,
        role: "system".into(),
    }
}

/// Sends one `birth-reminder` notification for each open, visible UCPP whose expected delivery
/// date is `after_days` or more behind the clock's date while its LA holds no plan for a baby
/// registered to the mother (whether or not a baby is registered: the payload lists those that
/// are). Each plan (LA, mother, expected delivery date) is reminded once, however often this
/// runs and on however many servers. One transaction; returns how many were sent.
pub fn send_birth_reminders(
    store: &dyn Store,
    clock: &dyn Clock,
    policy: &VisibilityPolicy,
    after_days: u32,
) -> Result<usize, StoreError> {
    let now = clock.now();
    let today = now.date_naive();
    let cutoff = today - chrono::Days::new(after_days.into());
    let mut tx = store.begin_changes()?;
    let mut sent = 0;
    for due in tx.due_birth_reminders(cutoff, today)? {
        let visibility = policy.visibility(&due.plan, today);
        let Some(edd) = due.plan.expected_delivery() else {
            continue;
        };
        if !visibility.is_visible()
            || !tx.mark_birth_notice(
                NotificationKind::BirthReminder,
                &due.la,
                due.mother,
                edd,
                now,
            )?
        {
            continue;
        }
        let babies = tx.babies_of(due.mother)?;
        send_reminder(tx.as_mut(), now, &due, visibility, &babies)?;
        sent += 1;
    }
    if sent > 0 {
        tx.append_audit(
            &AuditEntry::new(now, housekeeping_actor(), "births.reminders", None)
                .detail(format!("{sent} birth reminder(s) sent ({after_days} days after the expected delivery date)")),
        )?;
    }
    tx.commit()?;
    Ok(sent)
}

fn send_reminder(
    tx: &mut dyn ChangesTx,
    now: DateTime<Utc>,
    due: &DueBirthReminder,
    visibility: PlanVisibility,
    babies: &[Demographics],
) -> Result<(), StoreError> {
    let babies: Vec<_> = babies
        .iter()
        .filter(|b| born_under(b, &due.plan))
        .map(|b| json!({ "nhs_number": b.nhs_number, "date_of_birth": b.date_of_birth }))
        .collect();
    let id = crate::lookup::ordered_id();
    let payload = json!({
        "id": id,
        "kind": NotificationKind::BirthReminder.code(),
        "la": due.la,
        "created_at": payload_time(now),
        "mother": { "nhs_number": due.mother, "local_id": due.local_id },
        "plan": plan_json(&due.plan, visibility),
        "babies": babies,
    });
    tx.insert_notification(&NewNotification {
        id,
        la: due.la.clone(),
        kind: NotificationKind::BirthReminder,
        created_at: now,
        payload: payload.to_string(),
    })?;
    tx.append_audit(
        &AuditEntry::new(now, housekeeping_actor(), "births.reminder", None)
            .about(due.mother)
            .detail(format!(
                "expected delivery date passed with no plan for a baby; {} baby(ies) registered to the mother",
                babies.len()
            )),
    )
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
