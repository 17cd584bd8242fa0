//! Integration tests of the LA upload engine (SPEC 2.5–2.8, 3.2) against a real SQLite store.

use crate::common::*;
use cpis_core::demo;
use cpis_core::upload::{EngineError, Progress, ProgressPhase, SpooledFile, Submitted};
use cpis_domain::outcome::{DetailCode, FileOutcome, RecordOutcome};
use cpis_domain::report::{UploadStatus, UploadSummary};
use cpis_domain::upload::UploadMode;
use cpis_domain::{NhsNumber, PlanType};
use std::collections::BTreeMap;
use std::sync::Mutex;

const ERRORS_FILE: &str = include_str!("../../../../demo/uploads/errors-E08000026.csv");

fn n(s: &str) -> NhsNumber {
    NhsNumber::parse(s).expect("test NHS number")
}

fn new(s: Submitted) -> UploadSummary {
    match s {
        Submitted::New(s) => s,
        Submitted::Replay(s) => panic!("expected a new upload, got a replay of {}", s.id),
    }
}

/// A duplicate's own summary, checked to say it is one of `original` in fields and words.
fn replay_of(s: Submitted, original: &UploadSummary) -> UploadSummary {
    let s = match s {
        Submitted::Replay(s) => s,
        Submitted::New(s) => panic!("expected a replay, got a new upload {s:?}"),
    };
    assert_ne!(s.id, original.id, "the duplicate has its own report");
    assert_eq!(s.status, UploadStatus::Duplicate);
    assert_eq!(s.duplicate_of.as_ref(), Some(&original.id));
    assert_eq!(s.file_outcome, None, "a duplicate has no load outcome");
    assert_eq!(s.counts.rows, 0);
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("Duplicate: nothing was applied."),
        "{message}"
    );
    assert!(message.contains(original.id.as_str()), "{message}");
    s
}

fn outcomes(env: &Env, s: &UploadSummary) -> Vec<(u64, RecordOutcome, Option<DetailCode>)> {
    env.rows(s)
        .into_iter()
        .map(|r| (r.row, r.outcome, r.detail))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1–2. The demo data set.
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_errors_file_gives_every_row_the_outcome_the_readme_documents() {
    use DetailCode::*;
    use RecordOutcome::*;
    let env = Env::empty();
    demo::load(&env.engine).expect("demo loads");
    let cov = la(LA_A);

    // (row, NHS number as the report shows it, outcome, detail)
    let expected: [(u64, &str, RecordOutcome, Option<DetailCode>); 15] = [
        (1, "9995359790", NotFound, None),
        (2, "9994688081", Sensitive, None),
        (3, "9997721047", DobMismatch, None),
        (
            4,
            "9997289251",
            MalformedNhsNumber,
            Some(NhsNumberCheckDigit),
        ),
        (5, "999131362", MalformedNhsNumber, Some(NhsNumberLength)),
        (6, "9995532123", Superseded, None),
        (7, "9990276412", Accepted, None),
        (8, "9996598713", Accepted, None),
        (9, "9998946255", Accepted, None),
        (10, "9991085718", Accepted, None),
        (11, "9993222755", Invalid, Some(BadDate)),
        (12, "9992505796", Invalid, Some(EndBeforeStart)),
        (13, "9999071651", Invalid, Some(UnknownPlanType)),
        (14, "9998677068", Invalid, Some(UcppWithoutEdd)),
        (15, "9990276412", Invalid, Some(DuplicateRow)),
    ];

    // Everyone the rejected rows name (plus the superseded number's replacement and the valid
    // form of the bad-check-digit number): their records must not change at all.
    let untouched: Vec<NhsNumber> = [
        "9995359790",
        "9994688081",
        "9997721047",
        "9997289250",
        "9995532123",
        "9998429951",
        "9993222755",
        "9992505796",
        "9999071651",
        "9998677068",
    ]
    .into_iter()
    .map(n)
    .collect();
    let before: Vec<_> = untouched.iter().map(|x| env.all_records(*x)).collect();
    let counts_before = env.counts();
    for fresh in ["9990276412", "9996598713", "9991085718"] {
        assert!(
            env.record(n(fresh), LA_A).is_none(),
            "{fresh} is new to Coventry"
        );
    }
    let ended_before = env
        .record(n("9998946255"), LA_A)
        .expect("COV-000955 exists");
    assert_eq!(plan(&ended_before, PlanType::Cpp).unwrap().end(), None);

    let summary = new(env.submit(
        LA_A,
        "errors-E08000026",
        UploadMode::Delta,
        ERRORS_FILE.as_bytes(),
    ));

    assert_eq!(summary.status, UploadStatus::Completed);
    assert_eq!(summary.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(
        (
            summary.counts.rows,
            summary.counts.accepted,
            summary.counts.rejected
        ),
        (15, 4, 11)
    );
    let by_outcome: BTreeMap<RecordOutcome, u64> = [
        (NotFound, 1),
        (Sensitive, 1),
        (DobMismatch, 1),
        (MalformedNhsNumber, 2),
        (Superseded, 1),
        (Accepted, 4),
        (Invalid, 5),
    ]
    .into_iter()
    .collect();
    assert_eq!(summary.counts.by_outcome, by_outcome);
    assert_eq!(
        env.store.upload(&cov, &summary.id).unwrap().as_ref(),
        Some(&summary)
    );

    let rows = env.rows(&summary);
    assert_eq!(rows.len(), 15);
    for (got, (row, nhs_text, outcome, detail)) in rows.iter().zip(expected) {
        assert_eq!(got.row, row);
        assert_eq!(got.nhs_number, nhs_text, "row {row}");
        assert_eq!((got.outcome, got.detail), (outcome, detail), "row {row}");
        if outcome == Accepted {
            assert_eq!(got.message, None, "row {row}");
        } else {
            assert!(
                got.message.as_deref().is_some_and(|m| !m.is_empty()),
                "row {row}"
            );
        }
        let want_new = (row == 6).then(|| n("9998429951"));
        assert_eq!(got.new_nhs_number, want_new, "row {row}");
    }

    // Rejected rows changed nothing.
    for (x, was) in untouched.iter().zip(&before) {
        assert_eq!(&env.all_records(*x), was, "records of {x} changed");
        assert!(
            env.record(*x, LA_A).is_none(),
            "{x} gained a Coventry record"
        );
    }
    // Accepted rows are stored: three new records with one plan each, one plan ended.
    let counts = env.counts();
    assert_eq!(counts.records, counts_before.records + 3);
    assert_eq!(counts.plans, counts_before.plans + 3);

    let cpp = env.record(n("9990276412"), LA_A).expect("row 7 stored");
    assert_eq!(cpp.local_id.as_deref(), Some("COV-090034"));
    assert_eq!(cpp.plans.len(), 1);
    let p = plan(&cpp, PlanType::Cpp).unwrap();
    assert_eq!((p.start(), p.end()), (d("2026-10-02"), None));

    let lac = env.record(n("9996598713"), LA_A).expect("row 8 stored");
    assert_eq!(lac.given_name.as_deref(), Some("Sienna"));
    assert_eq!(plan(&lac, PlanType::Lac).unwrap().start(), d("2026-09-14"));

    let ended = env.record(n("9998946255"), LA_A).unwrap();
    let p = plan(&ended, PlanType::Cpp).unwrap();
    assert_eq!(
        (p.start(), p.end()),
        (d("2024-11-25"), Some(d("2026-10-28")))
    );
    assert_eq!(ended.local_id.as_deref(), Some("COV-000955"));

    let ucpp = env.record(n("9991085718"), LA_A).expect("row 10 stored");
    let p = plan(&ucpp, PlanType::Ucpp).unwrap();
    assert_eq!(p.expected_delivery(), Some(d("2027-02-11")));
    assert_eq!(ucpp.date_of_birth, Some(d("1997-02-19")));
}

#[test]
fn every_demo_upload_loads_and_the_shared_child_has_two_records() {
    let env = Env::empty();
    let loaded = demo::load(&env.engine).expect("demo loads");
    assert_eq!(loaded.local_authorities, 152);
    assert_eq!(loaded.care_settings, 50);
    assert_eq!(loaded.demographics, 2100);
    assert_eq!(loaded.uploads_applied, 8);
    assert_eq!(loaded.uploads_already_present, 0);

    // Every row of every demo file is one plan and every one was accepted.
    let data_rows: u64 = demo::UPLOADS
        .iter()
        .map(|(_, content)| {
            content
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .count() as u64
        })
        .sum();
    assert_eq!(data_rows, 1639, "README row counts");
    let counts = env.counts();
    assert_eq!(counts.plans, data_rows);
    assert_eq!(counts.uploads, 8);
    for (code, _) in demo::UPLOADS {
        assert!(
            env.store.la_record_count(&la(code)).unwrap() > 0,
            "{code} has records"
        );
    }

    let shared = env.all_records(n("9990597634"));
    let las: Vec<&str> = shared.iter().map(|r| r.la.as_str()).collect();
    assert_eq!(las, [LA_A, LA_B]);
    for (rec, local_id, start) in [
        (&shared[0], "COV-001010", "2025-09-07"),
        (&shared[1], "WES-001911", "2026-08-24"),
    ] {
        assert_eq!(rec.local_id.as_deref(), Some(local_id));
        assert_eq!(rec.date_of_birth, Some(d("2013-05-31")));
        let p = plan(rec, PlanType::Cpp).expect("CPP");
        assert_eq!((p.start(), p.end()), (d(start), None));
    }

    // Loading again changes nothing: every upload is a replay.
    let again = demo::load(&env.engine).expect("demo loads again");
    assert_eq!(
        (again.uploads_applied, again.uploads_already_present),
        (0, 8)
    );
    assert_eq!(data_counts(&env.counts()), data_counts(&counts));
    assert_eq!(env.all_records(n("9990597634")), shared);
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency.
// ---------------------------------------------------------------------------------------------

fn two_children() -> (Env, NhsNumber, NhsNumber) {
    let (x, y) = (nhs(1), nhs(2));
    let env = Env::with(&[active(x, "2015-01-01"), active(y, "2016-02-02")]);
    (env, x, y)
}

#[test]
fn same_file_id_twice_is_a_replay_that_changes_nothing() {
    let (env, x, y) = two_children();
    let body = file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]);
    let first = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(first.file_outcome, Some(FileOutcome::AllLoaded));
    let counts = env.counts();
    let rec = env.record(x, LA_A).expect("stored");

    // The identical file again.
    let again = replay_of(env.submit(LA_A, "F-1", UploadMode::Delta, &body), &first);
    assert_eq!(
        again,
        env.store.upload(&la(LA_A), &again.id).unwrap().unwrap(),
        "the duplicate's report is stored as answered"
    );
    assert_eq!(
        env.store.upload(&la(LA_A), &first.id).unwrap().unwrap(),
        first,
        "the original is untouched"
    );
    // The same file id with different content (an LA re-sending under a used id).
    let other = file(&[
        Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").end("2026-10-01"),
        Line::upsert(y, "2016-02-02", "LAC", "2026-03-01"),
    ]);
    let again = replay_of(env.submit(LA_A, "F-1", UploadMode::Delta, &other), &first);
    assert!(again.message.unwrap().contains("the file id 'F-1'"));

    assert_eq!(data_counts(&env.counts()), data_counts(&counts));
    assert_eq!(
        env.record(x, LA_A),
        Some(rec),
        "record rewritten by a replay"
    );
    assert!(env.record(y, LA_A).is_none());
}

#[test]
fn identical_content_under_a_new_file_id_is_a_replay() {
    let (env, x, _) = two_children();
    let open = file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]);
    let first = new(env.submit(LA_A, "F-1", UploadMode::Delta, &open));
    // A later file ends the plan; re-sending the first file must not reopen it.
    env.delta(
        LA_A,
        "F-2",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").end("2026-10-01")],
    );
    let rec = env.record(x, LA_A).unwrap();
    let counts = env.counts();

    let again = replay_of(env.submit(LA_A, "F-3", UploadMode::Delta, &open), &first);
    assert_eq!(again.meta.file_id, "F-3");
    assert!(again.message.unwrap().contains("the same content"));
    assert_eq!(env.record(x, LA_A), Some(rec));
    assert_eq!(
        plan(&env.record(x, LA_A).unwrap(), PlanType::Cpp)
            .unwrap()
            .end(),
        Some(d("2026-10-01"))
    );
    assert_eq!(data_counts(&env.counts()), data_counts(&counts));
}

#[test]
fn a_new_file_id_with_new_content_is_a_new_upload() {
    let (env, x, y) = two_children();
    let first = env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")],
    );
    let second = new(env.submit(
        LA_A,
        "F-2",
        UploadMode::Delta,
        &file(&[Line::upsert(y, "2016-02-02", "LAC", "2026-02-01")]),
    ));
    assert_ne!(second.id, first.id);
    assert_eq!(second.file_outcome, Some(FileOutcome::AllLoaded));
    assert!(env.record(y, LA_A).is_some());
    assert_eq!(env.counts().records, 2);
}

#[test]
fn a_refused_file_does_not_block_resubmitting_the_corrected_file_under_its_id() {
    let (env, x, _) = two_children();
    let bad = new(env.submit(LA_A, "F-1", UploadMode::Delta, b"not,a,header\n"));
    assert_eq!(bad.file_outcome, Some(FileOutcome::Malformed));
    let good = new(env.submit(
        LA_A,
        "F-1",
        UploadMode::Delta,
        &file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]),
    ));
    assert_eq!(good.file_outcome, Some(FileOutcome::AllLoaded));
    assert!(env.record(x, LA_A).is_some());
}

// ---------------------------------------------------------------------------------------------
// 4. LA isolation.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_upload_by_one_la_never_touches_another_las_record() {
    let (env, x, y) = two_children();
    let b_up = env.delta(
        LA_B,
        "B-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2025-06-01").local_id("WES-1"),
            Line::upsert(x, "2015-01-01", "LAC", "2025-07-01").local_id("WES-1"),
        ],
    );
    let b_rec = env.record(x, LA_B).expect("B holds x");
    assert_eq!(b_rec.plans.len(), 2);

    // A upserts the same child (different local id, an end date on the same plan type).
    let a_up = env.delta(
        LA_A,
        "A-1",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")
            .local_id("COV-1")
            .end("2026-10-01")],
    );
    assert_eq!(a_up.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(env.record(x, LA_B), Some(b_rec.clone()));
    assert_eq!(
        env.record(x, LA_A).unwrap().local_id.as_deref(),
        Some("COV-1")
    );

    // A deletes its record: B's stays with both plans.
    let del = env.delta(LA_A, "A-2", &[Line::delete(x, None)]);
    assert_eq!(del.counts.deleted, 1);
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(env.record(x, LA_B), Some(b_rec.clone()));

    // Deleting again (or deleting one plan) finds nothing of A's, even though B holds one.
    let again = env.delta(
        LA_A,
        "A-3",
        &[Line::delete(x, None), Line::delete(x, Some("LAC"))],
    );
    assert_eq!(again.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(
        outcomes(&env, &again),
        [
            (1, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
            (2, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
        ]
    );
    assert_eq!(env.record(x, LA_B), Some(b_rec.clone()));

    // A full upload by A listing only y does not end B's plans.
    let full = env.full(
        LA_A,
        "A-4",
        &[Line::upsert(y, "2016-02-02", "CPP", "2026-01-01")],
    );
    assert_eq!(full.status, UploadStatus::Completed);
    assert_eq!(full.counts.plans_ended, 0);
    assert_eq!(env.record(x, LA_B), Some(b_rec));

    // Uploads are only visible to their own LA.
    let (a, b) = (la(LA_A), la(LA_B));
    assert!(env.store.upload(&a, &a_up.id).unwrap().is_some());
    assert_eq!(env.store.upload(&b, &a_up.id).unwrap(), None);
    assert_eq!(env.store.upload(&a, &b_up.id).unwrap(), None);
    assert!(env
        .store
        .upload_rows(&b, &a_up.id, &cpis_store::RowFilter::default())
        .unwrap()
        .is_empty());
}

#[test]
fn another_las_identical_file_is_not_a_replay_of_mine() {
    let (env, x, _) = two_children();
    let body = file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]);
    let a = new(env.submit(LA_A, "SAME-ID", UploadMode::Delta, &body));
    let b = new(env.submit(LA_B, "SAME-ID", UploadMode::Delta, &body));
    assert_ne!(a.id, b.id);
    assert_eq!(b.file_outcome, Some(FileOutcome::AllLoaded));
    let las: Vec<String> = env
        .all_records(x)
        .iter()
        .map(|r| r.la.to_string())
        .collect();
    assert_eq!(las, [LA_A, LA_B]);
}

#[test]
fn confirming_another_las_held_upload_is_not_found() {
    let env = Env::with(&[active(nhs(1), "2015-01-01"), active(nhs(2), "2015-01-01")]);
    env.delta(
        LA_A,
        "A-1",
        &[
            Line::upsert(nhs(1), "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(nhs(2), "2015-01-01", "CPP", "2026-01-01"),
        ],
    );
    let held = env.full(LA_A, "A-2", &[]);
    assert_eq!(held.status, UploadStatus::HeldForConfirmation);
    let err = env
        .engine
        .confirm(&cap(LA_B), &held.id, &|_| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound), "{err:?}");
    assert_eq!(env.store.held_file(&la(LA_B), &held.id).unwrap(), None);
    assert_eq!(
        env.store
            .upload(&la(LA_A), &held.id)
            .unwrap()
            .unwrap()
            .status,
        UploadStatus::HeldForConfirmation
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Delta semantics.
// ---------------------------------------------------------------------------------------------

#[test]
fn delta_upsert_with_an_end_date_ends_the_plan() {
    let (env, x, _) = two_children();
    env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").local_id("OLD")],
    );
    let rec = env.record(x, LA_A).unwrap();
    assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), None);

    let s = env.delta(
        LA_A,
        "F-2",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")
            .local_id("NEW")
            .end("2026-09-30")],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    let rec = env.record(x, LA_A).unwrap();
    assert_eq!(rec.plans.len(), 1);
    let p = plan(&rec, PlanType::Cpp).unwrap();
    assert_eq!(
        (p.start(), p.end()),
        (d("2026-01-01"), Some(d("2026-09-30")))
    );
    assert_eq!(rec.local_id.as_deref(), Some("NEW"));
    assert_eq!(env.counts().records, 1);
}

#[test]
fn delta_delete_removes_the_las_record() {
    let (env, x, y) = two_children();
    env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(x, "2015-01-01", "LAC", "2026-02-01"),
            Line::upsert(y, "2016-02-02", "CPP", "2026-01-01"),
        ],
    );
    let y_rec = env.record(y, LA_A).unwrap();
    let s = env.delta(LA_A, "F-2", &[Line::delete(x, None)]);
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(s.counts.deleted, 1);
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(env.record(y, LA_A), Some(y_rec));
    assert_eq!(data_counts(&env.counts()), (1, 1));
}

#[test]
fn delta_delete_with_a_plan_type_removes_only_that_plan() {
    let (env, x, _) = two_children();
    env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(x, "2015-01-01", "LAC", "2026-02-01"),
        ],
    );
    let s = env.delta(LA_A, "F-2", &[Line::delete(x, Some("LAC"))]);
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(s.counts.deleted, 1);
    let rec = env.record(x, LA_A).expect("record kept");
    let types: Vec<PlanType> = rec.plans.iter().map(|p| p.plan_type()).collect();
    assert_eq!(types, [PlanType::Cpp]);

    // Deleting the last plan by type removes the record.
    let s = env.delta(LA_A, "F-3", &[Line::delete(x, Some("CPP"))]);
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(data_counts(&env.counts()), (0, 0));
}

#[test]
fn deleting_a_record_or_plan_the_la_does_not_hold_is_record_not_found() {
    let (env, x, y) = two_children();
    env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")],
    );
    let rec = env.record(x, LA_A).unwrap();
    let s = env.delta(
        LA_A,
        "F-2",
        &[Line::delete(y, None), Line::delete(x, Some("LAC"))],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(s.counts.deleted, 0);
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
            (2, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
        ]
    );
    assert_eq!(env.record(x, LA_A), Some(rec));
}

#[test]
fn a_delete_after_an_upsert_of_the_same_child_in_one_file_is_accepted() {
    let (env, x, y) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(y, "2016-02-02", "CPP", "2026-01-01"),
            Line::delete(x, None),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Accepted, None),
            (2, RecordOutcome::Accepted, None),
            (3, RecordOutcome::Accepted, None),
        ]
    );
    // Rows apply in file order: x was written, then removed.
    assert!(env.record(x, LA_A).is_none());
    assert!(env.record(y, LA_A).is_some());
    assert_eq!(s.counts.deleted, 1);
}

#[test]
fn a_delete_after_a_rejected_upsert_is_record_not_found() {
    let (env, x, _) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "1999-09-09", "CPP", "2026-01-01"),
            Line::delete(x, None),
        ],
    );
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::DobMismatch, None),
            (2, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
        ]
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
}

#[test]
fn deleting_a_plan_the_la_does_not_hold_is_record_not_found_even_after_upserting_another_plan() {
    let (env, x, _) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
            Line::delete(x, Some("LAC")),
        ],
    );
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Accepted, None),
            (2, RecordOutcome::Invalid, Some(DetailCode::RecordNotFound)),
        ]
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::Partial));
    let rec = env.record(x, LA_A).expect("the CPP upsert applied");
    assert!(plan(&rec, PlanType::Cpp).is_some());
}

// ---------------------------------------------------------------------------------------------
// 6. Full mode.
// ---------------------------------------------------------------------------------------------

/// Five children; LA_A holds open CPPs for the first four and an already-ended LAC for the fifth.
fn la_with_four_open_plans() -> (Env, [NhsNumber; 5]) {
    let kids = [nhs(10), nhs(11), nhs(12), nhs(13), nhs(14)];
    let env = Env::with(&kids.map(|k| active(k, "2014-04-04")));
    let mut lines: Vec<Line> = kids[..4]
        .iter()
        .map(|k| Line::upsert(*k, "2014-04-04", "CPP", "2026-01-01"))
        .collect();
    lines.push(Line::upsert(kids[4], "2014-04-04", "LAC", "2025-01-01").end("2026-01-31"));
    let s = env.delta(LA_A, "seed", &lines);
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    (env, kids)
}

#[test]
fn full_upload_ends_the_open_plans_of_absent_children_as_of_the_file_date() {
    let (env, k) = la_with_four_open_plans();
    let listed_before: Vec<_> = k[..3].iter().map(|x| env.record(*x, LA_A)).collect();
    let ended_before = env.record(k[4], LA_A);
    let counts = env.counts();

    let s = env.full(
        LA_A,
        "full-1",
        &k[..3]
            .iter()
            .map(|x| Line::upsert(*x, "2014-04-04", "CPP", "2026-01-01"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(s.status, UploadStatus::Completed);
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(s.counts.plans_ended, 1);
    assert_eq!(s.counts.deleted, 0);

    // The absent child keeps its record; its plan ends on the file date.
    let gone = env.record(k[3], LA_A).expect("never deleted");
    let p = plan(&gone, PlanType::Cpp).unwrap();
    assert_eq!((p.start(), p.end()), (d("2026-01-01"), Some(d(FILE_DATE))));
    // A plan that had already ended keeps its own end date.
    assert_eq!(env.record(k[4], LA_A), ended_before);
    // Listed children stay open.
    for (x, was) in k[..3].iter().zip(listed_before) {
        let now = env.record(*x, LA_A).unwrap();
        assert_eq!(plan(&now, PlanType::Cpp).unwrap().end(), None);
        assert_eq!(now.plans, was.unwrap().plans);
    }
    assert_eq!(data_counts(&env.counts()), data_counts(&counts));
}

#[test]
fn full_upload_does_not_end_a_listed_child_whose_row_was_rejected() {
    let (env, k) = la_with_four_open_plans();
    let s = env.full(
        LA_A,
        "full-1",
        &[
            Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01"),
            Line::upsert(k[1], "2014-04-04", "CPP", "2026-01-01"),
            Line::upsert(k[2], "2014-04-04", "CPP", "2026-01-01"),
            // Listed, but with the wrong date of birth: CPR03, and not "absent".
            Line::upsert(k[3], "2013-03-03", "CPP", "2026-01-01"),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(
        env.row(&s, 4).outcome,
        RecordOutcome::DobMismatch,
        "row 4 is the DOB mismatch"
    );
    assert_eq!(s.counts.plans_ended, 0);
    let rec = env.record(k[3], LA_A).unwrap();
    assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), None);
}

#[test]
fn full_upload_keeps_a_plan_listed_under_its_superseded_number() {
    // LA_A holds the child under the new number; its full file still uses the old one (CPR05).
    let (old, current, other) = (nhs(20), nhs(21), nhs(22));
    let env = Env::with(&[
        superseded(old, current, "2012-12-12"),
        active(current, "2012-12-12"),
        active(other, "2012-12-12"),
    ]);
    env.delta(
        LA_A,
        "seed",
        &[
            Line::upsert(current, "2012-12-12", "CPP", "2026-01-01"),
            Line::upsert(other, "2012-12-12", "CPP", "2026-01-01"),
        ],
    );
    let s = env.full(
        LA_A,
        "full-1",
        &[
            Line::upsert(old, "2012-12-12", "CPP", "2026-01-01"),
            Line::upsert(other, "2012-12-12", "CPP", "2026-01-01"),
        ],
    );
    assert_eq!(env.row(&s, 1).outcome, RecordOutcome::Superseded);
    assert_eq!(s.counts.plans_ended, 0);
    let rec = env.record(current, LA_A).unwrap();
    assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), None);
}

#[test]
fn full_upload_ending_more_than_half_is_held_until_confirmed() {
    let (env, k) = la_with_four_open_plans();
    let before: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    let counts = env.counts();
    let body = file(&[Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01").local_id("CHANGED")]);

    // Would end 3 of 4 open plans (75%).
    let held = new(env.submit(LA_A, "full-1", UploadMode::Full, &body));
    assert_eq!(held.status, UploadStatus::HeldForConfirmation);
    assert_eq!(held.file_outcome, None);
    assert_eq!(held.counts.plans_ended, 3);
    assert!(held
        .message
        .as_deref()
        .unwrap_or("")
        .contains("3 of your 4"));
    let after: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    assert_eq!(after, before, "a held upload applied something");
    assert_eq!(data_counts(&env.counts()), data_counts(&counts));
    let stored = env.store.upload(&la(LA_A), &held.id).unwrap().unwrap();
    assert_eq!(stored.status, UploadStatus::HeldForConfirmation);
    assert_eq!(
        env.store.held_file(&la(LA_A), &held.id).unwrap().as_deref(),
        Some(&body[..])
    );

    // Re-sending the held file is a replay of it, not a second hold.
    let again = replay_of(env.submit(LA_A, "full-1", UploadMode::Full, &body), &held);
    assert!(again.message.unwrap().contains("held for confirmation"));

    let done = env
        .engine
        .confirm(&cap(LA_A), &held.id, &|_| {})
        .expect("confirm");
    assert_eq!(done.id, held.id);
    assert_eq!(done.status, UploadStatus::Completed);
    assert_eq!(done.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(done.counts.plans_ended, 3);
    assert_eq!(done.counts.rows, 1);
    assert_eq!(env.rows(&done).len(), 1, "row results are not doubled");
    assert_eq!(
        env.store.upload(&la(LA_A), &held.id).unwrap().as_ref(),
        Some(&done)
    );
    assert_eq!(env.store.held_file(&la(LA_A), &held.id).unwrap(), None);

    let listed = env.record(k[0], LA_A).unwrap();
    assert_eq!(listed.local_id.as_deref(), Some("CHANGED"));
    assert_eq!(plan(&listed, PlanType::Cpp).unwrap().end(), None);
    for x in &k[1..4] {
        let rec = env.record(*x, LA_A).expect("ended, not deleted");
        assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), Some(d(FILE_DATE)));
    }
    assert_eq!(data_counts(&env.counts()), data_counts(&counts));

    let err = env
        .engine
        .confirm(&cap(LA_A), &held.id, &|_| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::NotHeld), "{err:?}");
}

#[test]
fn full_upload_ending_exactly_half_is_not_held() {
    let (env, k) = la_with_four_open_plans();
    let s = env.full(
        LA_A,
        "full-1",
        &[
            Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01"),
            Line::upsert(k[1], "2014-04-04", "CPP", "2026-01-01"),
        ],
    );
    assert_eq!(s.status, UploadStatus::Completed);
    assert_eq!(s.counts.plans_ended, 2);
    for x in &k[2..4] {
        let rec = env.record(*x, LA_A).unwrap();
        assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), Some(d(FILE_DATE)));
    }
}

#[test]
fn confirming_an_upload_that_was_never_held_is_refused() {
    let (env, x, _) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")],
    );
    let err = env.engine.confirm(&cap(LA_A), &s.id, &|_| {}).unwrap_err();
    assert!(matches!(err, EngineError::NotHeld), "{err:?}");
}

#[test]
fn full_upload_ends_future_dated_absent_plans_on_the_file_date_but_never_before_their_start() {
    let (a, b, c) = (nhs(60), nhs(61), nhs(62));
    let env = Env::with(&[
        active(a, "2014-04-04"),
        active(b, "2014-04-04"),
        active(c, "2014-04-04"),
    ]);
    env.delta(
        LA_A,
        "seed",
        &[
            Line::upsert(a, "2014-04-04", "CPP", "2026-01-01"),
            // Ends after the file date: still open on it.
            Line::upsert(b, "2014-04-04", "CPP", "2026-01-01").end("2026-12-31"),
            // Starts after the file date.
            Line::upsert(c, "2014-04-04", "LAC", "2026-12-01"),
        ],
    );
    let s = env.full(
        LA_A,
        "full-1",
        &[Line::upsert(a, "2014-04-04", "CPP", "2026-01-01")],
    );
    assert_eq!(
        s.status,
        UploadStatus::HeldForConfirmation,
        "2 of 3 open plans"
    );
    let done = env.engine.confirm(&cap(LA_A), &s.id, &|_| {}).unwrap();
    assert_eq!(done.counts.plans_ended, 2);
    let pb = plan(&env.record(b, LA_A).unwrap(), PlanType::Cpp).unwrap();
    assert_eq!(pb.end(), Some(d(FILE_DATE)));
    let pc = plan(&env.record(c, LA_A).unwrap(), PlanType::Lac).unwrap();
    assert_eq!(
        (pc.start(), pc.end()),
        (d("2026-12-01"), Some(d("2026-12-01")))
    );
}

#[test]
fn a_lower_mass_end_threshold_is_honoured() {
    let kids = [nhs(70), nhs(71), nhs(72), nhs(73)];
    let env = Env::with_settings(
        &kids.map(|k| active(k, "2014-04-04")),
        cpis_core::UploadSettings {
            mass_end_threshold: 0.2,
        },
    );
    env.delta(
        LA_A,
        "seed",
        &kids
            .iter()
            .map(|k| Line::upsert(*k, "2014-04-04", "CPP", "2026-01-01"))
            .collect::<Vec<_>>(),
    );
    // One of four (25%) is more than 20%.
    let s = env.full(
        LA_A,
        "full-1",
        &kids[..3]
            .iter()
            .map(|k| Line::upsert(*k, "2014-04-04", "CPP", "2026-01-01"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(s.status, UploadStatus::HeldForConfirmation);
    assert_eq!(
        plan(&env.record(kids[3], LA_A).unwrap(), PlanType::Cpp)
            .unwrap()
            .end(),
        None
    );
}

#[test]
fn full_upload_does_not_count_an_explicitly_deleted_record_as_an_ended_plan() {
    let (env, k) = la_with_four_open_plans();
    let s = env.full(
        LA_A,
        "full-1",
        &[
            Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01"),
            Line::upsert(k[1], "2014-04-04", "CPP", "2026-01-01"),
            Line::upsert(k[2], "2014-04-04", "CPP", "2026-01-01"),
            Line::delete(k[3], None),
        ],
    );
    assert_eq!(s.status, UploadStatus::Completed);
    assert_eq!(s.counts.deleted, 1);
    assert!(env.record(k[3], LA_A).is_none());
    assert_eq!(
        s.counts.plans_ended, 0,
        "the deleted record's plan was not ended"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. File-level outcomes.
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_header_is_cpf01_and_applies_nothing() {
    let (env, x, _) = two_children();
    let mut body = b"action,nhs_number,given_name\n".to_vec();
    body.extend_from_slice(
        Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")
            .text()
            .as_bytes(),
    );
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(s.file_outcome, Some(FileOutcome::Malformed));
    assert_eq!(s.status, UploadStatus::Completed);
    assert!(s.message.as_deref().unwrap_or("").contains("header"));
    assert_eq!(s.counts.rows, 0);
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(data_counts(&env.counts()), (0, 0));
    // The refusal is on record for the LA.
    assert_eq!(
        env.store.upload(&la(LA_A), &s.id).unwrap().as_ref(),
        Some(&s)
    );
}

#[test]
fn an_unclosed_quote_is_cpf01_with_its_line_and_nothing_is_applied() {
    let (env, x, y) = two_children();
    let mut body = file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]);
    // Row 2 opens a quote it never closes: the csv reader would read the rest as one field.
    body.extend_from_slice(
        Line::upsert(y, "2016-02-02", "CPP", "2026-01-01")
            .local_id("\"L-2")
            .text()
            .as_bytes(),
    );
    body.push(b'\n');
    body.extend_from_slice(
        Line::upsert(y, "2016-02-02", "LAC", "2026-01-01")
            .text()
            .as_bytes(),
    );
    body.push(b'\n');
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(s.file_outcome, Some(FileOutcome::Malformed), "{s:?}");
    let message = s.message.as_deref().unwrap_or("");
    assert!(message.contains("line 3"), "{message}");
    assert!(env.record(x, LA_A).is_none(), "row 1 was not applied");
    assert!(env.record(y, LA_A).is_none());
    assert_eq!(data_counts(&env.counts()), (0, 0));
}

#[test]
fn control_characters_in_names_are_cpr07_per_row() {
    let (env, x, y) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").given_name("Am\0y"),
            Line::upsert(y, "2016-02-02", "CPP", "2026-01-01").given_name("Zoë"),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(s.counts.rows, 2);
    assert_eq!(
        outcomes(&env, &s),
        vec![
            (
                1,
                RecordOutcome::Invalid,
                Some(DetailCode::ControlCharacter)
            ),
            (2, RecordOutcome::Accepted, None),
        ]
    );
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(
        env.record(y, LA_A).unwrap().given_name.as_deref(),
        Some("Zoë")
    );
}

#[test]
fn empty_body_is_cpf01() {
    let env = Env::with(&[]);
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, b""));
    assert_eq!(s.file_outcome, Some(FileOutcome::Malformed));
    assert_eq!(s.counts.rows, 0);
}

#[test]
fn invalid_utf8_in_a_middle_row_is_cpf01_and_nothing_is_applied() {
    let (env, x, y) = two_children();
    let mut body = file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]);
    body.extend_from_slice(b"upsert,");
    body.extend_from_slice(y.digits().as_bytes());
    body.extend_from_slice(b",L,\xff\xfe,Family,2016-02-02,CPP,2026-01-01,,,false\n");
    body.extend_from_slice(
        Line::upsert(y, "2016-02-02", "LAC", "2026-01-01")
            .text()
            .as_bytes(),
    );
    body.push(b'\n');
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(s.file_outcome, Some(FileOutcome::Malformed));
    assert!(
        s.message.as_deref().unwrap_or("").contains("line 3"),
        "{:?}",
        s.message
    );
    assert!(
        env.record(x, LA_A).is_none(),
        "row 1 applied before the bad row"
    );
    assert!(env.record(y, LA_A).is_none());
    assert_eq!(data_counts(&env.counts()), (0, 0));
    assert!(env.rows(&s).is_empty());
}

#[test]
fn an_unsupported_format_version_is_cpf06() {
    let (env, x, _) = two_children();
    let mut meta = env.meta(LA_A, "F-1", UploadMode::Delta);
    meta.format = "cpis-upload/2".into();
    let s = new(env.submit_meta(
        meta,
        &file(&[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")]),
    ));
    assert_eq!(s.file_outcome, Some(FileOutcome::UnsupportedVersion));
    assert!(env.record(x, LA_A).is_none());
    assert_eq!(
        env.store
            .upload(&la(LA_A), &s.id)
            .unwrap()
            .unwrap()
            .meta
            .format,
        "cpis-upload/2"
    );
}

#[test]
fn a_header_only_file_is_cpf02_with_no_rows() {
    let env = Env::with(&[]);
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &file(&[])));
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(s.counts.rows, 0);
    assert!(env.rows(&s).is_empty());
}

#[test]
fn a_header_with_bom_and_odd_case_is_accepted() {
    let (env, x, _) = two_children();
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(header_line().to_uppercase().as_bytes());
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(
        Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")
            .text()
            .as_bytes(),
    );
    body.extend_from_slice(b"\r\n");
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert!(env.record(x, LA_A).is_some());
}

#[test]
fn all_rows_rejected_is_cpf04() {
    let (env, x, y) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2000-01-01", "CPP", "2026-01-01"),
            Line::upsert(y, "2016-02-02", "CPP", "2026-13-01"),
            Line::upsert(nhs(99), "2016-02-02", "CPP", "2026-01-01"),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!((s.counts.accepted, s.counts.rejected), (0, 3));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::DobMismatch, None),
            (2, RecordOutcome::Invalid, Some(DetailCode::BadDate)),
            (3, RecordOutcome::NotFound, None),
        ]
    );
    assert_eq!(data_counts(&env.counts()), (0, 0));
}

#[test]
fn a_row_with_the_wrong_field_count_is_cpr07_wrong_field_count() {
    let (env, x, y) = two_children();
    let mut body = file(&[Line::upsert(y, "2016-02-02", "CPP", "2026-01-01")]);
    // Ten fields: the sensitive column is missing.
    body.extend_from_slice(
        format!("upsert,{},L,G,F,2015-01-01,CPP,2026-01-01,,\n", x.digits()).as_bytes(),
    );
    // Twelve fields.
    body.extend_from_slice(
        format!(
            "upsert,{},L,G,F,2015-01-01,LAC,2026-01-01,,,false,extra\n",
            x.digits()
        )
        .as_bytes(),
    );
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, &body));
    assert_eq!(s.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Accepted, None),
            (2, RecordOutcome::Invalid, Some(DetailCode::WrongFieldCount)),
            (3, RecordOutcome::Invalid, Some(DetailCode::WrongFieldCount)),
        ]
    );
    assert_eq!(env.row(&s, 2).nhs_number, x.digits());
    assert!(env.record(x, LA_A).is_none());
}

#[test]
fn blank_lines_are_skipped_and_do_not_count_as_rows() {
    let (env, x, y) = two_children();
    let body = format!(
        "{}\n{}\n\n\n{}\n",
        header_line(),
        Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").text(),
        Line::upsert(y, "2016-02-02", "XYZ", "2026-01-01").text()
    );
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, body.as_bytes()));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Accepted, None),
            (2, RecordOutcome::Invalid, Some(DetailCode::UnknownPlanType)),
        ]
    );
}

#[test]
fn quoted_fields_with_commas_and_quotes_are_read_as_csv() {
    let (env, x, _) = two_children();
    let body = format!(
        "{}\nupsert,{},\"L,1\",\"Ann \"\"Nan\"\"\",\"O'Neil, Jr\",2015-01-01,CPP,2026-01-01,,,false\n",
        header_line(),
        x.digits()
    );
    let s = new(env.submit(LA_A, "F-1", UploadMode::Delta, body.as_bytes()));
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    let rec = env.record(x, LA_A).unwrap();
    assert_eq!(rec.local_id.as_deref(), Some("L,1"));
    assert_eq!(rec.given_name.as_deref(), Some("Ann \"Nan\""));
    assert_eq!(rec.family_name.as_deref(), Some("O'Neil, Jr"));
}

// ---------------------------------------------------------------------------------------------
// 8. Sensitive (S-flagged) children.
// ---------------------------------------------------------------------------------------------

#[test]
fn an_s_flagged_child_needs_the_sensitive_mark() {
    let (s_child, plain) = (nhs(30), nhs(31));
    let env = Env::with(&[
        s_flagged(s_child, "2018-08-08"),
        active(plain, "2018-08-08"),
    ]);

    let s = env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(s_child, "2018-08-08", "CPP", "2026-01-01").sensitive(false)],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(outcomes(&env, &s), [(1, RecordOutcome::Sensitive, None)]);
    assert!(env.record(s_child, LA_A).is_none());

    let s = env.delta(
        LA_A,
        "F-2",
        &[
            Line::upsert(s_child, "2018-08-08", "CPP", "2026-01-01").sensitive(true),
            Line::upsert(plain, "2018-08-08", "CPP", "2026-01-01").sensitive(false),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    assert_eq!(env.row(&s, 1).outcome, RecordOutcome::Accepted);
    assert!(env.record(s_child, LA_A).expect("stored").sensitive);
    assert!(!env.record(plain, LA_A).expect("stored").sensitive);
}

// ---------------------------------------------------------------------------------------------
// 9. Demographics outcomes and duplicates.
// ---------------------------------------------------------------------------------------------

#[test]
fn superseded_inactive_and_unknown_numbers_are_rejected_with_their_codes() {
    let (old, replacement, gone, unknown) = (nhs(40), nhs(41), nhs(42), nhs(43));
    let env = Env::with(&[
        superseded(old, replacement, "2011-01-01"),
        active(replacement, "2011-01-01"),
        inactive(gone, "2011-01-01"),
    ]);
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(old, "2011-01-01", "CPP", "2026-01-01"),
            Line::upsert(gone, "2011-01-01", "CPP", "2026-01-01"),
            Line::upsert(unknown, "2011-01-01", "CPP", "2026-01-01"),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Superseded, None),
            (
                2,
                RecordOutcome::Invalid,
                Some(DetailCode::NhsNumberInactive)
            ),
            (3, RecordOutcome::NotFound, None),
        ]
    );
    let rows = env.rows(&s);
    assert_eq!(rows[0].nhs_number, old.digits());
    assert_eq!(rows[0].new_nhs_number, Some(replacement));
    assert_eq!(rows[1].new_nhs_number, None);
    for x in [old, replacement, gone, unknown] {
        assert!(env.all_records(x).is_empty());
    }
}

#[test]
fn a_duplicate_row_is_rejected_and_the_first_occurrence_wins() {
    let (env, x, y) = two_children();
    let s = env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(y, "2016-02-02", "CPP", "2026-01-01"),
            // Same child and plan type, written with spaces and a different start date.
            Line::upsert(x, "2015-01-01", "CPP", "2026-05-05").nhs_text(&format!(
                "{} {} {}",
                &x.digits()[..3],
                &x.digits()[3..6],
                &x.digits()[6..]
            )),
            // Same child, another plan type: not a duplicate.
            Line::upsert(x, "2015-01-01", "LAC", "2026-02-02"),
        ],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(
        outcomes(&env, &s),
        [
            (1, RecordOutcome::Accepted, None),
            (2, RecordOutcome::Accepted, None),
            (3, RecordOutcome::Invalid, Some(DetailCode::DuplicateRow)),
            (4, RecordOutcome::Accepted, None),
        ]
    );
    let rec = env.record(x, LA_A).unwrap();
    assert_eq!(plan(&rec, PlanType::Cpp).unwrap().start(), d("2026-01-01"));
    assert_eq!(plan(&rec, PlanType::Lac).unwrap().start(), d("2026-02-02"));
}

#[test]
fn an_ucpp_is_held_against_the_mothers_number_with_its_edd() {
    let mother = nhs(50);
    let env = Env::with(&[active(mother, "1995-05-05")]);
    let s = env.delta(
        LA_A,
        "F-1",
        &[Line::upsert(mother, "1995-05-05", "UCPP", "2026-08-01").edd("2027-01-15")],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::AllLoaded));
    let rec = env.record(mother, LA_A).unwrap();
    let p = plan(&rec, PlanType::Ucpp).unwrap();
    assert_eq!(
        (p.start(), p.end(), p.expected_delivery()),
        (d("2026-08-01"), None, Some(d("2027-01-15")))
    );
}

#[test]
fn progress_reports_every_row_verified() {
    let (env, x, y) = two_children();
    let body = file(&[
        Line::upsert(x, "2015-01-01", "CPP", "2026-01-01"),
        Line::upsert(y, "2016-02-02", "CPP", "2026-01-01"),
    ]);
    let seen: Mutex<Vec<Progress>> = Mutex::new(Vec::new());
    let spooled = SpooledFile::from_bytes(&body).unwrap();
    let out = env
        .engine
        .submit(
            &cap(LA_A),
            env.meta(LA_A, "F-1", UploadMode::Delta),
            &spooled,
            &|p| seen.lock().unwrap().push(p),
        )
        .unwrap();
    assert_eq!(out.summary().counts.rows, 2);
    let seen = seen.into_inner().unwrap();
    let last_verify = seen
        .iter()
        .rev()
        .find(|p| p.phase == ProgressPhase::Verifying)
        .expect("verification progress");
    assert_eq!(last_verify.rows, 2);
    assert_eq!(last_verify.bytes, body.len() as u64);
    assert_eq!(last_verify.total_bytes, body.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// 10. Arbitrary input never panics and a refused / empty-handed upload changes no record.
// ---------------------------------------------------------------------------------------------

mod arbitrary {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn people() -> Vec<cpis_domain::Demographics> {
        vec![
            active(nhs(1), "2015-01-01"),
            active(nhs(2), "2016-02-02"),
            s_flagged(nhs(3), "2017-03-03"),
            superseded(nhs(4), nhs(1), "2015-01-01"),
            inactive(nhs(5), "2018-04-04"),
            active(nhs(6), "1990-01-01"),
        ]
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u32..8).prop_map(|i| nhs(i).digits()),
            Just("upsert".to_owned()),
            Just("delete".to_owned()),
            Just("CPP".to_owned()),
            Just("LAC".to_owned()),
            Just("UCPP".to_owned()),
            Just("true".to_owned()),
            Just(String::new()),
            Just("2015-01-01".to_owned()),
            Just("2026-01-01".to_owned()),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}",
            "[ -~]{0,12}",
            "\\PC{0,6}",
        ]
    }

    /// A row that is valid for one of `people()`, with (sometimes) one field replaced.
    fn mostly_valid_line() -> impl Strategy<Value = String> {
        let rows = [
            Line::upsert(nhs(1), "2015-01-01", "CPP", "2026-01-01"),
            Line::upsert(nhs(2), "2016-02-02", "LAC", "2026-01-01").end("2026-10-01"),
            Line::upsert(nhs(3), "2017-03-03", "CPP", "2026-01-01").sensitive(true),
            Line::upsert(nhs(6), "1990-01-01", "UCPP", "2026-01-01").edd("2027-01-01"),
            Line::delete(nhs(1), None),
            Line::delete(nhs(2), Some("LAC")),
        ];
        (
            prop::sample::select(rows.to_vec()),
            prop::option::of((0usize..11, field())),
        )
            .prop_map(|(row, change)| {
                let mut fields: Vec<String> = row.text().split(',').map(str::to_owned).collect();
                if let Some((i, value)) = change {
                    fields[i] = value;
                }
                fields.join(",")
            })
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => mostly_valid_line(),
            1 => prop::collection::vec(field(), 11).prop_map(|f| f.join(",")),
            1 => prop::collection::vec(field(), 0..14).prop_map(|f| f.join(",")),
            1 => "[ -~\"\r]{0,40}",
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => prop::collection::vec(any::<u8>(), 0..200),
            3 => prop::collection::vec(line(), 0..8).prop_map(|lines| {
                let mut s = header_line();
                for l in lines {
                    s.push('\n');
                    s.push_str(&l);
                }
                s.into_bytes()
            }),
            1 => (prop::collection::vec(line(), 0..4), prop::collection::vec(any::<u8>(), 0..40)).prop_map(
                |(lines, tail)| {
                    let mut s = header_line();
                    for l in lines {
                        s.push('\n');
                        s.push_str(&l);
                    }
                    s.push('\n');
                    let mut b = s.into_bytes();
                    b.extend(tail);
                    b
                }
            ),
        ]
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_refusals_change_no_record() {
        let env = Env::with(&people());
        // Something for full-mode and delete rows to find.
        env.delta(
            LA_A,
            "seed",
            &[
                Line::upsert(nhs(1), "2015-01-01", "CPP", "2025-01-01"),
                Line::upsert(nhs(2), "2016-02-02", "LAC", "2025-01-01"),
            ],
        );
        let seq = AtomicU64::new(0);
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::Direct(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/proptest-regressions/upload_engine.txt"
                )),
            )),
            ..Config::default()
        });
        runner
            .run(&(body(), any::<bool>()), |(bytes, full)| {
                let mode = if full {
                    UploadMode::Full
                } else {
                    UploadMode::Delta
                };
                let id = format!("p-{}", seq.fetch_add(1, Ordering::Relaxed));
                let before = env.counts();
                let spooled = SpooledFile::from_bytes(&bytes).unwrap();
                let out =
                    env.engine
                        .submit(&cap(LA_A), env.meta(LA_A, &id, mode), &spooled, &|_| {});
                prop_assert!(out.is_ok(), "submit failed: {:?}", out.err());
                let out = out.unwrap();
                let s = out.summary();
                let after = env.counts();
                match (s.status, s.file_outcome) {
                    (_, Some(FileOutcome::Malformed)) => {
                        prop_assert_eq!(data_counts(&after), data_counts(&before));
                        prop_assert_eq!(s.counts.rows, 0);
                    }
                    (_, Some(FileOutcome::NothingLoaded)) => {
                        prop_assert_eq!(after.records, before.records);
                        prop_assert_eq!(s.counts.accepted, 0);
                    }
                    (UploadStatus::HeldForConfirmation, _) => {
                        prop_assert_eq!(data_counts(&after), data_counts(&before));
                    }
                    _ => {}
                }
                if let Submitted::New(s) = &out {
                    prop_assert_eq!(s.counts.rows, s.counts.accepted + s.counts.rejected);
                    prop_assert_eq!(env.rows(s).len() as u64, s.counts.rows);
                    prop_assert!(
                        s.file_outcome.is_some() || s.status == UploadStatus::HeldForConfirmation
                    );
                } else {
                    prop_assert_eq!(data_counts(&after), data_counts(&before));
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn a_held_upload_cannot_be_confirmed_after_a_later_upload_was_applied() {
    let (env, k) = la_with_four_open_plans();
    let body = file(&[Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01")]);
    let held = new(env.submit(LA_A, "full-old", UploadMode::Full, &body));
    assert_eq!(held.status, UploadStatus::HeldForConfirmation);
    // The LA sends a newer delta file meanwhile; the held list is now out of date.
    let later = env.delta(
        LA_A,
        "later",
        &[Line::upsert(k[1], "2014-04-04", "LAC", "2026-02-01")],
    );
    assert_eq!(later.file_outcome, Some(FileOutcome::AllLoaded));
    let before: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    let err = env
        .engine
        .confirm(&cap(LA_A), &held.id, &|_| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::Stale), "{err:?}");
    let after: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    assert_eq!(after, before, "a stale confirmation applied nothing");

    // The LA is not stuck: re-sending the same list is processed afresh (held again here, as it
    // would still end most plans), not answered with the dead held upload.
    let again = new(env.submit(LA_A, "full-old", UploadMode::Full, &body));
    assert_ne!(again.id, held.id);
    assert_eq!(again.status, UploadStatus::HeldForConfirmation);
    let done = env
        .engine
        .confirm(&cap(LA_A), &again.id, &|_| {})
        .expect("the fresh hold confirms");
    assert_eq!(done.status, UploadStatus::Completed);
}

#[test]
fn an_la_missing_from_the_directory_cannot_upload() {
    let env = Env::with(&[active(nhs(1), "2014-04-04")]);
    let spooled = SpooledFile::from_bytes(&file(&[Line::upsert(
        nhs(1),
        "2014-04-04",
        "CPP",
        "2026-01-01",
    )]))
    .unwrap();
    let err = env
        .engine
        .submit(
            &cap("E09999998"),
            env.meta("E09999998", "x", UploadMode::Delta),
            &spooled,
            &|_| {},
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownLocalAuthority), "{err:?}");
    assert_eq!(env.counts().records, 0);
}

#[test]
fn a_full_file_whose_every_row_is_rejected_ends_nothing() {
    let (env, k) = la_with_four_open_plans();
    let before: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    // One row, for a child the index does not know: CPF04, and no "absent" child is ended.
    let s = env.full(
        LA_A,
        "full-bad",
        &[Line::upsert(nhs(900), "2014-04-04", "CPP", "2026-01-01")],
    );
    assert_eq!(s.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(s.counts.plans_ended, 0);
    let after: Vec<_> = k.iter().map(|x| env.record(*x, LA_A)).collect();
    assert_eq!(after, before);
}

fn confirm_audit_entries(env: &Env) -> usize {
    env.store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("upload.confirm".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .len()
}

#[test]
fn concurrent_confirms_of_one_held_upload_apply_exactly_once() {
    let (env, k) = la_with_four_open_plans();
    let body = file(&[Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01")]);
    let held = new(env.submit(LA_A, "full-1", UploadMode::Full, &body));
    assert_eq!(held.status, UploadStatus::HeldForConfirmation);
    assert_eq!(held.counts.plans_ended, 3);

    let start = std::sync::Barrier::new(5);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    env.engine.confirm(&cap(LA_A), &held.id, &|_| {})
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let applied: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(applied.len(), 1, "exactly one confirm applies: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, EngineError::NotHeld), "{e:?}");
        }
    }
    assert_eq!(applied[0].counts.plans_ended, 3);
    assert_eq!(
        env.store.upload(&la(LA_A), &held.id).unwrap().as_ref(),
        Some(applied[0]),
        "the stored report keeps the first result"
    );
    assert_eq!(confirm_audit_entries(&env), 1);
    for x in &k[1..4] {
        let rec = env.record(*x, LA_A).unwrap();
        assert_eq!(plan(&rec, PlanType::Cpp).unwrap().end(), Some(d(FILE_DATE)));
    }
}

#[test]
fn a_confirm_racing_a_delta_never_applies_the_old_list_after_it() {
    // Whichever commits first, the register never ends a plan that the delta created after the
    // full list was held: either the confirm applies first and the delta's plan stays open, or the
    // confirm comes second and is refused as stale.
    for _ in 0..10 {
        let (env, k) = la_with_four_open_plans();
        let body = file(&[Line::upsert(k[0], "2014-04-04", "CPP", "2026-01-01")]);
        let held = new(env.submit(LA_A, "full-old", UploadMode::Full, &body));
        assert_eq!(held.status, UploadStatus::HeldForConfirmation);
        let start = std::sync::Barrier::new(2);
        let (confirmed, delta) = std::thread::scope(|scope| {
            let c = scope.spawn(|| {
                start.wait();
                env.engine.confirm(&cap(LA_A), &held.id, &|_| {})
            });
            let d = scope.spawn(|| {
                start.wait();
                env.delta(
                    LA_A,
                    "later",
                    &[Line::upsert(k[1], "2014-04-04", "LAC", "2026-02-01")],
                )
            });
            (c.join().unwrap(), d.join().unwrap())
        });
        assert_eq!(delta.file_outcome, Some(FileOutcome::AllLoaded));
        let lac = plan(&env.record(k[1], LA_A).unwrap(), PlanType::Lac).map(|p| p.end());
        assert_eq!(lac, Some(None), "the delta's new plan is open");
        match confirmed {
            Ok(done) => {
                assert_eq!(done.counts.plans_ended, 3);
                assert_eq!(confirm_audit_entries(&env), 1);
            }
            // Lost the race: refused (409 either way: the delta retired the held upload before the
            // confirm read it, or came first inside its applying transaction).
            Err(e) => {
                assert!(
                    matches!(e, EngineError::Stale | EngineError::NotHeld),
                    "{e:?}"
                );
                assert_eq!(confirm_audit_entries(&env), 0);
                let cpp = plan(&env.record(k[2], LA_A).unwrap(), PlanType::Cpp).unwrap();
                assert_eq!(cpp.end(), None, "the stale list ended nothing");
            }
        }
    }
}

fn sensitive_removals(env: &Env) -> Vec<cpis_domain::AuditRecord> {
    env.store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("record.sensitive_removed".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn the_las_sensitive_mark_holds_while_any_plan_row_is_marked() {
    let (env, x, _) = two_children();
    let is_sensitive = |env: &Env| env.record(x, LA_A).unwrap().sensitive;
    // Two rows of one child disagree, the unmarked one last: the child is sensitive.
    env.delta(
        LA_A,
        "F-1",
        &[
            Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").sensitive(true),
            Line::upsert(x, "2015-01-01", "LAC", "2026-02-01").sensitive(false),
        ],
    );
    assert!(is_sensitive(&env), "the last row removed the mark");
    // A later delta with an empty sensitive column does not remove it.
    env.delta(
        LA_A,
        "F-2",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01")
            .local_id("NEW")
            .sensitive_unstated()],
    );
    assert!(is_sensitive(&env), "an empty column removed the mark");
    assert!(sensitive_removals(&env).is_empty());
    // An explicit false on the last marked plan removes it, and that is audited.
    env.delta(
        LA_A,
        "F-3",
        &[Line::upsert(x, "2015-01-01", "CPP", "2026-01-01").sensitive(false)],
    );
    assert!(!is_sensitive(&env));
    let removals = sensitive_removals(&env);
    assert_eq!(removals.len(), 1);
    assert_eq!(removals[0].entry.subject_nhs, Some(x));
    assert!(removals[0]
        .entry
        .detail
        .as_deref()
        .unwrap_or("")
        .contains(LA_A));
}

/// Every report row carries the local id it was sent with, accepted or not, so a data officer
/// can find a rejected row in the LA's own system (issue #18).
#[test]
fn every_report_row_keeps_the_local_id_it_was_sent_with() {
    let (known, unknown) = (nhs(1), nhs(2));
    let env = Env::with(&[active(known, "2015-01-01")]);
    let s = env.delta(
        LA_A,
        "local-ids",
        &[
            Line::upsert(known, "2015-01-01", "CPP", "2026-01-01"),
            // Not in the demographics index: CPR01, still with its local id.
            Line::upsert(unknown, "2016-01-01", "CPP", "2026-01-01"),
        ],
    );
    let rows = env.rows(&s);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].outcome, RecordOutcome::Accepted);
    assert_eq!(rows[0].local_id, Some(format!("LID-{}", known.digits())));
    assert_eq!(rows[1].outcome, RecordOutcome::NotFound);
    assert_eq!(rows[1].local_id, Some(format!("LID-{}", unknown.digits())));
}
