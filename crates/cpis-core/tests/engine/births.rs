//! Births to mothers on an unborn child protection plan, birth reminders, maternity lookups and
//! adoption invalidation (docs/WORKFLOW.md, "Births and adoption"). SQLite, and PostgreSQL with
//! CPIS_TEST_BACKEND=postgres.

use crate::common::*;
use crate::lifecycle::admin;
use chrono::{TimeZone, Utc};
use cpis_auth::{OrgKind, Principal};
use cpis_core::lifecycle::{apply_demographic_changes, send_birth_reminders};
use cpis_core::loaders::parse_demographics;
use cpis_core::{LookupRequest, LookupService};
use cpis_domain::{
    DemographicStatus, Demographics, NhsNumber, NotificationKind, Permission, Permissions,
    SettingType, VisibilityPolicy,
};

fn notes(env: &Env, la_code: &str, kind: NotificationKind) -> Vec<serde_json::Value> {
    env.store
        .notifications(&la(la_code), 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == kind)
        .map(|n| serde_json::from_str(&n.payload).unwrap())
        .collect()
}

fn newborn(baby: NhsNumber, dob: &str, mother: NhsNumber) -> Demographics {
    Demographics {
        mother_nhs_number: Some(mother),
        ..active(baby, dob)
    }
}

fn apply(env: &Env, changes: &[Demographics]) -> cpis_core::lifecycle::ChangesReport {
    apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        changes,
    )
    .unwrap()
}

fn remind(env: &Env) -> usize {
    send_birth_reminders(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        14,
    )
    .unwrap()
}

fn at(date: &str) -> chrono::DateTime<Utc> {
    let d = d(date);
    Utc.from_utc_datetime(&d.and_hms_opt(9, 0, 0).unwrap())
}

fn ucpp(mother: NhsNumber, start: &str, edd: &str) -> Line {
    Line::upsert(mother, "1995-01-01", "UCPP", start)
        .edd(edd)
        .local_id(&format!("MUM-{}", mother.digits()))
}

#[test]
fn a_baby_registered_to_a_mother_on_a_visible_ucpp_tells_that_la_once() {
    // Mother 1: a UCPP of LA A and a CPP of LA B (LA B is not told: its plan is not a UCPP).
    // Mother 3: no plan. Mother 5: a UCPP of LA A that ended long ago (past its window).
    let (mum, baby, mum_no_plan, baby2, mum_ended, baby3) =
        (nhs(1), nhs(2), nhs(3), nhs(4), nhs(5), nhs(6));
    let env = Env::with(&[
        active(mum, "1995-01-01"),
        active(mum_no_plan, "1995-01-01"),
        active(mum_ended, "1995-01-01"),
    ]);
    env.delta(
        LA_A,
        "a",
        &[
            ucpp(mum, "2026-06-01", "2026-11-20"),
            ucpp(mum_ended, "2025-01-01", "2025-08-01").end("2025-06-01"),
        ],
    );
    env.delta(
        LA_B,
        "b",
        &[Line::upsert(mum, "1995-01-01", "CPP", "2026-01-01")],
    );
    let changes = [
        newborn(baby, "2026-10-31", mum),
        newborn(baby2, "2026-10-31", mum_no_plan),
        newborn(baby3, "2026-10-31", mum_ended),
    ];

    let report = apply(&env, &changes);
    assert_eq!((report.births_notified, report.notifications), (1, 1));
    let births = notes(&env, LA_A, NotificationKind::Birth);
    assert_eq!(births.len(), 1);
    let b = &births[0];
    assert_eq!(b["kind"], "birth");
    assert_eq!(b["la"], LA_A);
    assert_eq!(b["baby"]["nhs_number"], baby.digits());
    assert_eq!(b["baby"]["date_of_birth"], "2026-10-31");
    assert_eq!(b["mother"]["nhs_number"], mum.digits());
    assert_eq!(b["mother"]["local_id"], format!("MUM-{}", mum.digits()));
    assert_eq!(b["plan"]["plan_type"], "UCPP");
    assert_eq!(b["plan"]["expected_delivery_date"], "2026-11-20");
    assert!(notes(&env, LA_B, NotificationKind::Birth).is_empty());
    // The index keeps the link (the reminder job reads it).
    assert_eq!(
        env.store
            .demographics(baby)
            .unwrap()
            .unwrap()
            .mother_nhs_number,
        Some(mum)
    );

    // The feed again: nobody is told twice.
    let again = apply(&env, &changes);
    assert_eq!((again.births_notified, again.notifications), (0, 0));
    assert_eq!(notes(&env, LA_A, NotificationKind::Birth).len(), 1);
}

#[test]
fn an_older_sibling_registered_to_the_mother_is_not_a_birth() {
    let (mum, sibling) = (nhs(1), nhs(2));
    let env = Env::with(&[active(mum, "1995-01-01")]);
    env.delta(LA_A, "a", &[ucpp(mum, "2026-06-01", "2026-11-20")]);
    // Born before the UCPP started: not the unborn child of this plan.
    let report = apply(&env, &[newborn(sibling, "2024-03-01", mum)]);
    assert_eq!(report.births_notified, 0);
    assert!(notes(&env, LA_A, NotificationKind::Birth).is_empty());
}

#[test]
fn a_ucpp_past_its_edd_without_a_plan_for_the_baby_is_reminded_once() {
    // Mother 1 (LA A): no baby registered. Mother 3 (LA A): baby 4 registered and given a CPP
    // by LA A: no reminder. Mother 5 (LA B): baby 6 registered, no plan: reminded, naming it.
    let (m1, m3, b4, m5, b6) = (nhs(1), nhs(3), nhs(4), nhs(5), nhs(6));
    let env = Env::with(&[
        active(m1, "1995-01-01"),
        active(m3, "1995-01-01"),
        active(m5, "1995-01-01"),
    ]);
    env.delta(
        LA_A,
        "a",
        &[
            ucpp(m1, "2026-06-01", "2026-11-10"),
            ucpp(m3, "2026-06-01", "2026-11-10"),
        ],
    );
    env.delta(LA_B, "b", &[ucpp(m5, "2026-06-01", "2026-11-10")]);
    env.clock.set(at("2026-11-05"));
    apply(
        &env,
        &[newborn(b4, "2026-11-04", m3), newborn(b6, "2026-11-04", m5)],
    );
    env.delta(
        LA_A,
        "a2",
        &[Line::upsert(b4, "2026-11-04", "CPP", "2026-11-05")],
    );

    env.clock.set(at("2026-11-23"));
    assert_eq!(remind(&env), 0, "13 days after the EDD is too early");
    env.clock.set(at("2026-11-24"));
    assert_eq!(remind(&env), 2);
    assert_eq!(remind(&env), 0, "never twice");
    env.clock.set(at("2026-11-30"));
    assert_eq!(remind(&env), 0, "not on a later day either");

    let a = notes(&env, LA_A, NotificationKind::BirthReminder);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["mother"]["nhs_number"], m1.digits());
    assert_eq!(a[0]["mother"]["local_id"], format!("MUM-{}", m1.digits()));
    assert_eq!(a[0]["plan"]["expected_delivery_date"], "2026-11-10");
    assert_eq!(a[0]["babies"], serde_json::json!([]));
    let b = notes(&env, LA_B, NotificationKind::BirthReminder);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["mother"]["nhs_number"], m5.digits());
    assert_eq!(b[0]["babies"][0]["nhs_number"], b6.digits());
    let audit = env
        .store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("births.reminder".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let per_plan = audit.iter().filter(|r| r.entry.action == "births.reminder");
    assert_eq!(per_plan.count(), 2);
    assert!(audit.iter().any(|r| r.entry.action == "births.reminders"));
}

#[test]
fn two_servers_reminding_at_once_send_one_reminder() {
    let mum = nhs(1);
    let env = Env::with(&[active(mum, "1995-01-01")]);
    env.delta(LA_A, "a", &[ucpp(mum, "2026-06-01", "2026-11-10")]);
    env.clock.set(at("2026-11-25"));
    let other: std::sync::Arc<dyn cpis_store::Store> =
        std::sync::Arc::from(cpis_store::open(&env.db_url()).unwrap());
    let stores = [env.store.clone(), other];
    let clock = env.clock.clone();
    let sent: usize = std::thread::scope(|s| {
        let runs: Vec<_> = stores
            .iter()
            .map(|store| {
                let clock = clock.clone();
                s.spawn(move || {
                    send_birth_reminders(
                        store.as_ref(),
                        clock.as_ref(),
                        &VisibilityPolicy::default(),
                        14,
                    )
                    .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum()
    });
    assert_eq!(sent, 1);
    assert_eq!(notes(&env, LA_A, NotificationKind::BirthReminder).len(), 1);
}

fn lookup_by(env: &Env, setting: SettingType, n: NhsNumber) -> cpis_core::LookupResult {
    let who = Principal::local_operator(
        "clinician",
        la("RXTEST1"),
        "Clinician",
        OrgKind::CareSetting(setting),
        Permissions::new([Permission::ViewNotify]),
    );
    let lookups = LookupService::start(env.store.clone(), env.clock.clone(), Default::default());
    lookups
        .lookup(LookupRequest::new(&who.lookup().unwrap(), n, true, None))
        .unwrap()
}

#[test]
fn a_maternity_lookup_of_a_mother_on_a_ucpp_is_marked_maternity() {
    let (mum, child) = (nhs(1), nhs(2));
    let env = Env::with(&[active(mum, "1995-01-01"), active(child, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[
            ucpp(mum, "2026-06-01", "2026-11-20"),
            Line::upsert(child, "2015-01-01", "CPP", "2026-01-01"),
        ],
    );
    lookup_by(&env, SettingType::Maternity, mum);
    lookup_by(&env, SettingType::EmergencyDepartment, mum);
    lookup_by(&env, SettingType::Maternity, child);
    let access = notes(&env, LA_A, NotificationKind::Access);
    assert_eq!(access.len(), 3);
    assert_eq!(access[0]["maternity"], true);
    assert!(
        access[1].get("maternity").is_none(),
        "an ED is not maternity"
    );
    assert!(
        access[2].get("maternity").is_none(),
        "a child's CPP is no UCPP"
    );
}

#[test]
fn an_adoption_invalidation_moves_nothing_hides_the_plans_and_tells_each_la_once() {
    let (child, new) = (nhs(1), nhs(2));
    let env = Env::with(&[active(child, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[Line::upsert(child, "2015-01-01", "CPP", "2026-01-01")],
    );
    env.delta(
        LA_B,
        "b",
        &[Line::upsert(child, "2015-01-01", "LAC", "2026-02-01")],
    );
    // The feed as the national service sends it, with the adoptive number alongside.
    let csv = format!(
        "nhs_number,status,superseded_by,date_of_birth,sensitive\n{},invalidated-adoption,{},2015-01-01,false\n",
        child.digits(),
        new.digits()
    );
    let changes = parse_demographics(csv.as_bytes()).unwrap();
    assert_eq!(changes[0].status, DemographicStatus::InvalidatedAdoption);

    let report = apply(&env, &changes);
    assert_eq!(
        (
            report.adoption_invalidated_with_records,
            report.records_moved,
            report.notifications
        ),
        (1, 0, 2)
    );
    // Nothing moved, nothing recorded about the new number.
    assert_eq!(env.store.records_held(child).unwrap().len(), 2);
    assert!(env.store.records_held(new).unwrap().is_empty());
    assert_eq!(env.store.demographics(new).unwrap(), None);
    // The old number no longer flags.
    assert!(env.store.records_for(child).unwrap().is_empty());
    let r = lookup_by(&env, SettingType::EmergencyDepartment, child);
    assert!(r.records.is_empty() && r.notified.is_empty());
    for la_code in [LA_A, LA_B] {
        let n = notes(&env, la_code, NotificationKind::AdoptionInvalidation);
        assert_eq!(n.len(), 1, "{la_code}");
        assert_eq!(n[0]["nhs_number"], child.digits());
        assert_eq!(n[0]["status"], "invalidated-adoption");
        assert_eq!(n[0]["records_moved"], false);
        assert_eq!(n[0]["local_id"], format!("LID-{}", child.digits()));
        let text = n[0].to_string();
        assert!(!text.contains(&new.digits()), "no new number: {text}");
        assert!(notes(&env, la_code, NotificationKind::Access).is_empty());
    }
    // The LA still sees its own record, to close it.
    assert_eq!(
        env.store
            .la_records(
                &la(LA_A),
                &cpis_store::RecordQuery {
                    search: None,
                    offset: 0,
                    limit: 10
                }
            )
            .unwrap()
            .len(),
        1
    );
    // Again: nobody is told twice.
    let again = apply(&env, &changes);
    assert_eq!(again.notifications, 0);
    // An upload for the invalidated number is refused.
    let s = env.delta(
        LA_A,
        "a2",
        &[Line::upsert(child, "2015-01-01", "CPP", "2026-03-01")],
    );
    let row = env.row(&s, 1);
    assert_eq!(
        row.detail,
        Some(cpis_domain::outcome::DetailCode::NhsNumberInactive)
    );
}

#[test]
fn the_reminder_delay_is_configurable_and_an_ended_ucpp_is_not_reminded() {
    let (mum, ended) = (nhs(1), nhs(2));
    let env = Env::with(&[active(mum, "1995-01-01"), active(ended, "1995-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[
            ucpp(mum, "2026-06-01", "2026-11-10"),
            ucpp(ended, "2026-06-01", "2026-11-10").end("2026-11-12"),
        ],
    );
    env.clock.set(at("2026-11-13"));
    let run = |days| {
        send_birth_reminders(
            env.store.as_ref(),
            env.clock.as_ref(),
            &VisibilityPolicy::default(),
            days,
        )
        .unwrap()
    };
    assert_eq!(run(14), 0);
    assert_eq!(run(3), 1);
    let sent = notes(&env, LA_A, NotificationKind::BirthReminder);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["mother"]["nhs_number"], mum.digits());
}
