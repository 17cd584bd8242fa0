//! Frequent attendance across settings: the lookup counts the child's unscheduled accesses in the
//! last six months and 30 days (this one included) and marks the access notification
//! `frequent-attendance` when a threshold is met. A settable clock moves the windows.

use crate::common::*;
use chrono::Duration;
use cpis_auth::{OrgKind, Principal};
use cpis_core::lookup::LookupResult;
use cpis_core::{LookupRequest, LookupService, LookupSettings};
use cpis_domain::attendance::{AttendanceCounts, AttendancePattern, AttendanceThresholds};
use cpis_domain::{Clock, NhsNumber, NotificationKind, Permission, Permissions, SettingType};
use serde_json::Value;

struct Rig {
    env: Env,
    lookups: LookupService,
    child: NhsNumber,
}

fn rig(thresholds: AttendanceThresholds) -> Rig {
    let child = nhs(1);
    let env = Env::with(&[active(child, "2016-05-01"), active(nhs(2), "2016-05-01")]);
    env.delta(
        LA_A,
        "F1",
        &[Line::upsert(child, "2016-05-01", "CPP", "2026-01-01")],
    );
    let lookups = LookupService::start_with_settings(
        env.store.clone(),
        env.clock.clone(),
        LookupSettings {
            visibility: Default::default(),
            attendance: thresholds,
        },
        Default::default(),
    );
    Rig {
        env,
        lookups,
        child,
    }
}

impl Rig {
    /// A lookup by a clinician at care setting `ods` of type `t` (notifying where it may).
    fn look(&self, ods: &str, t: SettingType, n: NhsNumber) -> LookupResult {
        let p = Principal::local_operator(
            "clinician",
            la(ods),
            &format!("Setting {ods}"),
            OrgKind::CareSetting(t),
            Permissions::new([Permission::ViewNotify]),
        );
        self.lookups
            .lookup(LookupRequest::new(&p.lookup().unwrap(), n, true, None))
            .unwrap()
    }

    fn ed(&self, ods: &str) -> LookupResult {
        self.look(ods, SettingType::EmergencyDepartment, self.child)
    }

    /// An emergency department's lookup that shows no access history (as the FHIR API's).
    fn ed_without_history(&self, ods: &str) -> LookupResult {
        let p = Principal::local_operator(
            "clinician",
            la(ods),
            &format!("Setting {ods}"),
            OrgKind::CareSetting(SettingType::EmergencyDepartment),
            Permissions::new([Permission::ViewNotify]),
        );
        let request = LookupRequest::new(&p.lookup().unwrap(), self.child, true, None);
        self.lookups.lookup(request.without_history()).unwrap()
    }

    fn days_on(&self, days: i64) {
        self.env
            .clock
            .set(self.env.clock.now() + Duration::days(days));
    }

    /// The newest access notification to LA A.
    fn last_notification(&self) -> Value {
        let n = self
            .env
            .store
            .notifications(&la(LA_A), 0, 1000)
            .unwrap()
            .into_iter()
            .rfind(|n| n.kind == NotificationKind::Access)
            .expect("an access notification");
        serde_json::from_str(&n.payload).unwrap()
    }

    fn notification_count(&self) -> usize {
        self.env
            .store
            .notifications(&la(LA_A), 0, 1000)
            .unwrap()
            .len()
    }
}

fn counts(seen_6_months: u32, seen_30_days: u32, organisations_30_days: u32) -> AttendanceCounts {
    AttendanceCounts {
        seen_6_months,
        seen_30_days,
        organisations_30_days,
    }
}

fn attendance_json(c: AttendanceCounts) -> Value {
    serde_json::json!({
        "seen_6_months": c.seen_6_months,
        "seen_30_days": c.seen_30_days,
        "organisations_30_days": c.organisations_30_days,
    })
}

#[test]
fn two_settings_within_thirty_days_is_frequent_attendance() {
    let r = rig(AttendanceThresholds::default());
    let first = r.ed("RXA01");
    assert_eq!(
        first.attendance.counts,
        counts(1, 1, 1),
        "this access counts"
    );
    assert_eq!(first.pattern, None);
    let n = r.last_notification();
    assert_eq!(n["attendance"], attendance_json(counts(1, 1, 1)));
    assert!(
        n.get("pattern").is_none(),
        "no pattern below the thresholds"
    );

    r.days_on(12);
    let second = r.look("RXB01", SettingType::UrgentTreatmentCentre, r.child);
    assert_eq!(second.attendance.counts, counts(2, 2, 2));
    assert_eq!(second.pattern, Some(AttendancePattern::FrequentAttendance));
    assert_eq!(
        second.attendance.organisations_30_days.len(),
        2,
        "both settings named for the clinician"
    );
    let n = r.last_notification();
    assert_eq!(n["pattern"], "frequent-attendance");
    assert_eq!(n["attendance"], attendance_json(counts(2, 2, 2)));
}

#[test]
fn two_settings_more_than_thirty_days_apart_are_not_a_pattern() {
    let r = rig(AttendanceThresholds::default());
    r.ed("RXA01");
    r.days_on(31);
    let second = r.ed("RXB01");
    assert_eq!(second.attendance.counts, counts(2, 1, 1));
    assert_eq!(second.pattern, None);
    assert!(r.last_notification().get("pattern").is_none());
}

#[test]
fn three_attendances_in_six_months_at_one_setting_is_frequent_attendance() {
    let r = rig(AttendanceThresholds::default());
    r.ed("RXA01");
    r.days_on(70);
    assert_eq!(r.ed("RXA01").pattern, None);
    r.days_on(70);
    let third = r.ed("RXA01");
    assert_eq!(third.attendance.counts, counts(3, 1, 1));
    assert_eq!(third.pattern, Some(AttendancePattern::FrequentAttendance));
    assert_eq!(r.last_notification()["pattern"], "frequent-attendance");
    // Over six months after the first, it has left the window.
    r.days_on(50);
    let fourth = r.ed("RXA01");
    assert_eq!(
        fourth.attendance.counts,
        counts(3, 1, 1),
        "days 70, 140, 190"
    );
    r.days_on(150);
    let fifth = r.ed("RXA01");
    assert_eq!(fifth.attendance.counts, counts(2, 1, 1), "days 190 and 340");
    assert_eq!(fifth.pattern, None);
}

#[test]
fn silent_lookups_and_other_children_are_not_attendances() {
    let r = rig(AttendanceThresholds::default());
    r.ed("RXA01");
    let before = r.notification_count();
    // A GP's lookup is silent: it is not an attendance, notifies nobody, and sees the count.
    let gp = r.look("G81001", SettingType::Gp, r.child);
    assert_eq!(gp.attendance.counts, counts(1, 1, 1));
    assert_eq!(gp.pattern, None);
    assert_eq!(r.notification_count(), before);
    // Another child's lookups (a miss: no plan) read nothing and count nothing.
    let miss = r.look("RXB01", SettingType::EmergencyDepartment, nhs(2));
    assert_eq!(miss.attendance.counts, counts(0, 0, 0));
    assert_eq!(miss.pattern, None);
    let second = r.ed("RXA01");
    assert_eq!(second.attendance.counts, counts(2, 2, 1));
    assert_eq!(second.pattern, None);
}

#[test]
fn configured_thresholds_decide_the_pattern() {
    let r = rig(AttendanceThresholds {
        seen_6_months: 4,
        organisations_30_days: 3,
    });
    r.ed("RXA01");
    r.days_on(1);
    let two_settings = r.ed("RXB01");
    assert_eq!(two_settings.attendance.counts, counts(2, 2, 2));
    assert_eq!(two_settings.pattern, None, "3 settings are needed");
    r.days_on(1);
    let three_settings = r.ed("RXC01");
    assert_eq!(three_settings.attendance.counts, counts(3, 3, 3));
    assert_eq!(
        three_settings.pattern,
        Some(AttendancePattern::FrequentAttendance)
    );
}

#[test]
fn every_access_notification_carries_contacts_or_null() {
    let r = rig(AttendanceThresholds::default());
    r.ed("RXA01");
    let n = r.last_notification();
    // An operator principal has no directory phone and no identity contact: both null.
    assert!(n["access"]["organisation"]
        .as_object()
        .unwrap()
        .contains_key("phone"));
    assert_eq!(n["access"]["organisation"]["phone"], Value::Null);
    assert!(n["access"].as_object().unwrap().contains_key("contact"));
    assert_eq!(n["access"]["contact"], Value::Null);
}

/// Issue #16, target 3: lookups made while an upload's transaction is open are answered without
/// waiting for it (SQLite: from the lookup spool), the second counts the first among the child's
/// attendances, and both notifications reach the LA once the upload ends, each once, announced
/// on the notification bus.
#[test]
fn lookups_during_an_upload_are_answered_at_once_and_notify_after_it() {
    use std::sync::mpsc::channel;
    use std::time::Duration as Wait;
    let r = rig(AttendanceThresholds::default());
    let before = r.notification_count();
    let bus = r.lookups.commits();
    let (holding_tx, holding) = channel();
    let (release_tx, release) = channel::<()>();
    let store = r.env.store.clone();
    let upload = std::thread::spawn(move || {
        let up = cpis_store::NewUpload {
            id: cpis_core::UploadEngine::new_upload_id(),
            meta: cpis_domain::report::UploadMeta {
                la: la(LA_A),
                file_id: "held-open".into(),
                mode: cpis_domain::upload::UploadMode::Full,
                file_date: d("2026-01-02"),
                format: cpis_domain::upload::FORMAT_V1.into(),
                channel: "api".into(),
            },
            content_sha256: "held-open".into(),
            received_at: chrono::Utc::now(),
        };
        let mut tx = store.begin_upload().unwrap();
        tx.insert_upload(&up).unwrap();
        holding_tx.send(()).unwrap();
        release.recv().unwrap();
        drop(tx);
    });
    holding.recv().unwrap();
    let answers = std::thread::scope(|scope| {
        let (done_tx, done) = channel();
        let r = &r;
        scope.spawn(move || {
            let first = r.ed("RXA01");
            let second = r.look("RXB01", SettingType::UrgentTreatmentCentre, r.child);
            done_tx.send((first, second)).unwrap();
        });
        let answers = done.recv_timeout(Wait::from_secs(30));
        release_tx.send(()).unwrap();
        answers.expect("lookups waited for the upload's open transaction")
    });
    upload.join().unwrap();
    let (first, second) = answers;
    assert_eq!(first.attendance.counts, counts(1, 1, 1));
    assert_eq!(
        second.attendance.counts,
        counts(2, 2, 2),
        "the first counts"
    );
    assert_eq!(second.pattern, Some(AttendancePattern::FrequentAttendance));
    // Copied in once the writer is free, and announced: wait on the bus, boundedly.
    let mut seen = bus.generation();
    for _ in 0..100 {
        if r.notification_count() == before + 2 {
            break;
        }
        seen = bus.wait(seen, Wait::from_millis(100));
    }
    assert_eq!(
        r.notification_count(),
        before + 2,
        "each lookup's notification, once"
    );
    assert_eq!(r.last_notification()["pattern"], "frequent-attendance");
}

/// Issue #16: lookups read their view side by side, before the group that writes them; however
/// many lookups of one child race, each counts every access written before its own exactly
/// once (the k-th access written counts k) and shows the ones just before it as its history.
#[test]
fn racing_lookups_of_one_child_count_every_earlier_access_once() {
    const THREADS: usize = 8;
    const EACH: usize = 10;
    let r = rig(AttendanceThresholds::default());
    let results: Vec<LookupResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| scope.spawn(|| (0..EACH).map(|_| r.ed("RXA01")).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut by_count: Vec<(u32, &LookupResult)> = results
        .iter()
        .map(|l| (l.attendance.counts.seen_6_months, l))
        .collect();
    by_count.sort_by_key(|(count, _)| *count);
    let counts: Vec<u32> = by_count.iter().map(|(c, _)| *c).collect();
    let expected: Vec<u32> = (1..=u32::try_from(THREADS * EACH).unwrap()).collect();
    assert_eq!(
        counts, expected,
        "each access counted once by every later lookup"
    );
    for (k, (_, lookup)) in by_count.iter().enumerate() {
        let history: Vec<&str> = lookup.history.iter().map(|a| a.id.as_str()).collect();
        let before: Vec<&str> = by_count[k.saturating_sub(25)..k]
            .iter()
            .rev()
            .map(|(_, l)| l.access.id.as_str())
            .collect();
        assert_eq!(
            history,
            before,
            "the history of the lookup that counted {}",
            k + 1
        );
    }
}

/// Lookups that show no history (the FHIR API's) read only the newest access's place, not the
/// history: racing with lookups that show it, each still counts every access written before its
/// own exactly once, and its answer carries no history.
#[test]
fn lookups_without_history_count_every_earlier_access_once() {
    const THREADS: usize = 6;
    const EACH: usize = 10;
    let r = rig(AttendanceThresholds::default());
    let results: Vec<(bool, LookupResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let r = &r;
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let shown = (t + i) % 2 == 0;
                            let l = if shown {
                                r.ed("RXA01")
                            } else {
                                r.ed_without_history("RXA01")
                            };
                            (shown, l)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut counts: Vec<u32> = (results.iter())
        .map(|(_, l)| l.attendance.counts.seen_6_months)
        .collect();
    counts.sort_unstable();
    let expected: Vec<u32> = (1..=u32::try_from(THREADS * EACH).unwrap()).collect();
    assert_eq!(
        counts, expected,
        "each access counted once by every later lookup"
    );
    for (shown, l) in &results {
        let earlier = l.attendance.counts.seen_6_months as usize - 1;
        let len = if *shown { earlier.min(25) } else { 0 };
        assert_eq!(l.history.len(), len, "history shown: {shown}");
    }
}
