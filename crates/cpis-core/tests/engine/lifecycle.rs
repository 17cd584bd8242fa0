//! Lifecycle: demographics changes move records and notify their LAs; retention purges plans
//! past their window. Runs on SQLite (and on PostgreSQL with CPIS_TEST_BACKEND=postgres).

use crate::common::*;
use chrono::{TimeZone, Utc};
use cpis_auth::{OrgKind, Principal};
use cpis_core::lifecycle::{apply_demographic_changes, purge};
use cpis_domain::{
    DemographicStatus, Demographics, NotificationKind, Permission, Permissions, PlanType,
    VisibilityPolicy,
};

pub(crate) fn admin() -> cpis_auth::capability::Admin {
    Principal::local_operator(
        "test-admin",
        la("CPISOPS"),
        "ops",
        OrgKind::Other,
        Permissions::new([Permission::Admin]),
    )
    .admin()
    .unwrap()
}

fn inactive_notifications(env: &Env, la_code: &str) -> Vec<serde_json::Value> {
    env.store
        .notifications(&la(la_code), 0, 1000)
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == NotificationKind::InactiveNhsNumber)
        .map(|n| serde_json::from_str(&n.payload).unwrap())
        .collect()
}

fn change(n: cpis_domain::NhsNumber, status: DemographicStatus) -> Demographics {
    Demographics {
        nhs_number: n,
        status,
        date_of_birth: d("2015-01-01"),
        sensitive: false,
        mother_nhs_number: None,
    }
}

#[test]
fn a_superseded_number_moves_its_records_and_tells_each_la_once() {
    let (old, new) = (nhs(1), nhs(2));
    let env = Env::with(&[active(old, "2015-01-01"), active(new, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[Line::upsert(old, "2015-01-01", "CPP", "2026-01-01")],
    );
    env.delta(
        LA_B,
        "b",
        &[Line::upsert(old, "2015-01-01", "LAC", "2026-02-01")],
    );
    let changes = [change(old, DemographicStatus::Superseded(new))];

    let report = apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        &changes,
    )
    .unwrap();
    assert_eq!(
        (
            report.superseded_with_records,
            report.records_moved,
            report.notifications
        ),
        (1, 2, 2)
    );
    assert!(
        env.all_records(old).is_empty(),
        "nothing is left on the old number"
    );
    let moved = env.all_records(new);
    assert_eq!(moved.len(), 2);
    assert!(plan(env.record(new, LA_A).as_ref().unwrap(), PlanType::Cpp).is_some());
    assert!(plan(env.record(new, LA_B).as_ref().unwrap(), PlanType::Lac).is_some());
    for la_code in [LA_A, LA_B] {
        let n = inactive_notifications(&env, la_code);
        assert_eq!(n.len(), 1, "{la_code}");
        assert_eq!(n[0]["nhs_number"], old.digits());
        assert_eq!(n[0]["replacement_nhs_number"], new.digits());
        assert_eq!(n[0]["status"], "superseded");
        assert_eq!(n[0]["la"], la_code);
    }
    assert_eq!(
        env.store.demographics(old).unwrap().unwrap().status,
        DemographicStatus::Superseded(new)
    );

    // The same file again: nothing moves, nobody is told twice.
    let again = apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        &changes,
    )
    .unwrap();
    assert_eq!((again.records_moved, again.notifications), (0, 0));
    assert_eq!(inactive_notifications(&env, LA_A).len(), 1);
    assert_eq!(env.all_records(new).len(), 2);
}

#[test]
fn a_move_onto_a_number_the_la_already_holds_merges_the_plans() {
    let (old, new) = (nhs(1), nhs(2));
    let env = Env::with(&[active(old, "2015-01-01"), active(new, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[
            Line::upsert(old, "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(old, "2015-01-01", "LAC", "2025-01-01"),
            Line::upsert(new, "2015-01-01", "LAC", "2026-03-01"),
        ],
    );
    apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        &[change(old, DemographicStatus::Superseded(new))],
    )
    .unwrap();
    let rec = env.record(new, LA_A).unwrap();
    assert_eq!(rec.plans.len(), 2);
    assert_eq!(plan(&rec, PlanType::Cpp).unwrap().start(), d("2026-01-01"));
    // The plan already held under the new number wins over the moved duplicate.
    assert_eq!(plan(&rec, PlanType::Lac).unwrap().start(), d("2026-03-01"));
    assert!(env.record(old, LA_A).is_none());
}

#[test]
fn an_inactive_number_notifies_without_moving_and_only_once() {
    let n = nhs(5);
    let env = Env::with(&[active(n, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[Line::upsert(n, "2015-01-01", "CPP", "2026-01-01")],
    );
    let changes = [change(n, DemographicStatus::Inactive)];
    let r = apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        &changes,
    )
    .unwrap();
    assert_eq!(
        (r.inactive_with_records, r.notifications, r.records_moved),
        (1, 1, 0)
    );
    assert!(env.record(n, LA_A).is_some(), "the record stays");
    let notes = inactive_notifications(&env, LA_A);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["status"], "inactive");
    assert!(notes[0]["replacement_nhs_number"].is_null());
    let again = apply_demographic_changes(
        env.store.as_ref(),
        env.clock.as_ref(),
        &VisibilityPolicy::default(),
        &admin(),
        &changes,
    )
    .unwrap();
    assert_eq!(again.notifications, 0);
    assert!(inactive_notifications(&env, LA_B).is_empty());
}

#[test]
fn purge_removes_only_plans_past_their_window_and_keeps_the_audit() {
    let kids: Vec<_> = (10..15).map(nhs).collect();
    let people: Vec<_> = kids.iter().map(|k| active(*k, "2015-01-01")).collect();
    let env = Env::with(&people);
    let mother = kids[4];
    env.delta(
        LA_A,
        "seed",
        &[
            // ended 400 days before "today" (2026-11-01): past the 365-day window
            Line::upsert(kids[0], "2015-01-01", "CPP", "2024-01-01").end("2025-09-27"),
            // ended 100 days ago: still shown
            Line::upsert(kids[1], "2015-01-01", "CPP", "2025-01-01").end("2026-07-24"),
            // open: always shown
            Line::upsert(kids[2], "2015-01-01", "LAC", "2025-01-01"),
            // two plans, one past the window: the record stays with the other
            Line::upsert(kids[3], "2015-01-01", "CPP", "2023-01-01").end("2024-01-01"),
            Line::upsert(kids[3], "2015-01-01", "LAC", "2025-01-01"),
            // UCPP whose EDD was 60 days ago: past EDD + 28
            Line::upsert(mother, "2015-01-01", "UCPP", "2026-01-01").edd("2026-09-02"),
        ],
    );
    let policy = VisibilityPolicy::default();
    let dry = purge(
        env.store.as_ref(),
        env.clock.as_ref(),
        &policy,
        &admin(),
        true,
    )
    .unwrap();
    assert_eq!((dry.plans_due, dry.plans_deleted), (3, 0));
    assert_eq!(env.counts().plans, 6, "a dry run deletes nothing");

    let done = purge(
        env.store.as_ref(),
        env.clock.as_ref(),
        &policy,
        &admin(),
        false,
    )
    .unwrap();
    assert_eq!(
        (done.plans_due, done.plans_deleted, done.records_deleted),
        (3, 3, 2)
    );
    assert!(env.record(kids[0], LA_A).is_none());
    assert!(env.record(kids[1], LA_A).is_some());
    assert!(env.record(kids[2], LA_A).is_some());
    let k3 = env.record(kids[3], LA_A).unwrap();
    assert_eq!(k3.plans.len(), 1);
    assert!(plan(&k3, PlanType::Lac).is_some());
    assert!(env.record(mother, LA_A).is_none());
    let audit = env
        .store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("retention.".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0]
        .entry
        .detail
        .as_deref()
        .unwrap()
        .contains("deleted 3 plans and 2 records"));
    assert!(matches!(
        env.store.audit_verify().unwrap(),
        cpis_store::AuditVerification::Intact { .. }
    ));
}

#[test]
fn purge_keeps_a_plan_that_changed_after_it_was_listed() {
    let k = nhs(20);
    let env = Env::with(&[active(k, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[Line::upsert(k, "2015-01-01", "CPP", "2023-01-01").end("2024-01-01")],
    );
    let listed = env.store.purgeable_plans().unwrap();
    assert_eq!(listed.len(), 1);
    // The LA reopens the plan before the purge runs.
    env.delta(
        LA_A,
        "b",
        &[Line::upsert(k, "2015-01-01", "CPP", "2023-01-01")],
    );
    let audit = cpis_domain::AuditEntry::new(
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        cpis_domain::AuditActor::anonymous(),
        "retention.purge",
        None,
    )
    .outcome(cpis_domain::AuditOutcome::Success);
    assert_eq!(env.store.purge(&listed, &audit).unwrap(), (0, 0));
    assert_eq!(
        plan(&env.record(k, LA_A).unwrap(), PlanType::Cpp)
            .unwrap()
            .end(),
        None
    );
}
