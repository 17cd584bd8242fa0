//! Admin operations over HTTP (change feed, retention) and the Prometheus metrics.

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

async fn post(app: &TestApp, uri: &str, token: &str, body: String) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/csv")
        .body(Body::from(body))
        .unwrap();
    app.send(req).await
}

const HEADER_DEMOGRAPHICS: &str = "nhs_number,status,superseded_by,date_of_birth,sensitive";

#[tokio::test]
async fn a_change_feed_moves_the_shared_child_and_notifies_both_las() {
    let app = spawn_app();
    // The shared child (Coventry and Westminster) is superseded by a spare active number.
    let old = "9990597634";
    let dob = "2013-05-31";
    let replacement = (600_000_000u32..)
        .filter_map(cpis_domain::NhsNumber::from_prefix)
        .next()
        .unwrap();
    let body = format!(
        "{HEADER_DEMOGRAPHICS}\n{replacement},active,,{dob},false\n{old},superseded,{replacement},{dob},false\n"
    );
    let r = post(
        &app,
        "/api/v1/admin/demographics/changes",
        ADMIN_TOKEN,
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["records_moved"], 2);
    assert_eq!(j["notifications"], 2);
    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let n = app.get("/api/v1/notifications", Some(token)).await.json();
        let inactive: Vec<_> = n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["kind"] == "inactive-nhs-number")
            .collect();
        assert_eq!(inactive.len(), 1);
        assert_eq!(inactive[0]["nhs_number"], old);
        assert_eq!(inactive[0]["replacement_nhs_number"], replacement.digits());
    }
    // Looking up the new number now finds both LAs.
    let uri = format!(
        "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{replacement}"
    );
    let r = app.get(&uri, Some(ED_TOKEN)).await;
    assert_eq!(r.json()["total"], 2);
    // Idempotent.
    let again = post(
        &app,
        "/api/v1/admin/demographics/changes",
        ADMIN_TOKEN,
        body,
    )
    .await;
    assert_eq!(again.json()["notifications"], 0);
}

#[tokio::test]
async fn a_bad_change_feed_is_refused_whole_and_only_admins_may_send_one() {
    let app = spawn_app();
    let before = app.store.counts().unwrap();
    let body = format!("{HEADER_DEMOGRAPHICS}\n9990597634,superseded,,2013-05-31,false\n");
    let r = post(
        &app,
        "/api/v1/admin/demographics/changes",
        ADMIN_TOKEN,
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["message"].as_str().unwrap().contains("line 2"));
    let ok = format!("{HEADER_DEMOGRAPHICS}\n9990597634,inactive,,2013-05-31,false\n");
    for token in [COVENTRY_TOKEN, ED_TOKEN, AUDITOR_TOKEN] {
        let r = post(
            &app,
            "/api/v1/admin/demographics/changes",
            token,
            ok.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token}");
    }
    assert_eq!(
        app.store.counts().unwrap().notifications,
        before.notifications
    );
}

#[tokio::test]
async fn purge_defaults_to_a_dry_run() {
    let app = spawn_app();
    let before = app.store.counts().unwrap();
    let r = post(&app, "/api/v1/admin/purge", ADMIN_TOKEN, String::new()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    assert!(
        j["plans_due"].as_u64().unwrap() > 0,
        "the demo data has plans ended over a year ago"
    );
    assert_eq!(app.store.counts().unwrap().plans, before.plans);
    let r = post(
        &app,
        "/api/v1/admin/purge?dry_run=false",
        ADMIN_TOKEN,
        String::new(),
    )
    .await;
    let j = r.json();
    assert_eq!(j["plans_deleted"], j["plans_due"]);
    assert_eq!(
        app.store.counts().unwrap().plans,
        before.plans - j["plans_deleted"].as_u64().unwrap()
    );
    let r = post(
        &app,
        "/api/v1/admin/purge?dry_run=maybe",
        ADMIN_TOKEN,
        String::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metrics_count_lookups_and_outbox_depth_without_personal_data() {
    let app = spawn_app();
    let uri = "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9990597634";
    for _ in 0..3 {
        assert_eq!(app.get(uri, Some(ED_TOKEN)).await.status, StatusCode::OK);
    }
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(
        text.contains("cpis_lookups_total{kind=\"unscheduled\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("cpis_notifications_unacknowledged 6"),
        "{text}"
    );
    assert!(
        text.contains("cpis_lookup_commit_seconds_count 3"),
        "{text}"
    );
    assert!(!text.contains("9990597634"));
}

/// An audit search is itself audited in words (which filters), never as debug output.
#[tokio::test]
async fn an_audit_search_is_audited_as_a_sentence() {
    let app = spawn_app();
    let r = app
        .get(
            "/api/v1/audit?user=ed.clinician&action=lookup.&limit=5",
            Some(AUDITOR_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // (Reading the trail is itself a search: the one before it is ours.)
    let entries = app.audit_entries("?action=audit.search&limit=2").await;
    let detail = entries[1]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "Searched the audit trail through the API: user ed.clinician, action starting lookup.."
    );
    assert!(
        !detail.contains("None") && !detail.contains("Some("),
        "{detail}"
    );
}

const HEADER_WITH_MOTHER: &str =
    "nhs_number,status,superseded_by,date_of_birth,sensitive,mother_nhs_number";

fn unused_nhs(from: u32) -> cpis_domain::NhsNumber {
    (from..)
        .filter_map(cpis_domain::NhsNumber::from_prefix)
        .next()
        .unwrap()
}

async fn kinds(app: &TestApp, token: &str, kind: &str) -> Vec<serde_json::Value> {
    app.all_notifications(token)
        .await
        .into_iter()
        .filter(|n| n["kind"] == kind)
        .collect()
}

/// Runs the housekeeping's birth-reminder step with the app's clock (off the async thread, as
/// the housekeeping task does).
async fn run_birth_reminders(app: &TestApp) -> usize {
    let state = app.state().clone();
    tokio::task::spawn_blocking(move || cpis_server::birth_reminders(&state).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_newborn_in_the_change_feed_tells_the_ucpp_la_and_a_late_plan_is_reminded() {
    let app = spawn_app();
    let mother = &spare_mothers()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[ucpp_row(mother, "2026-06-01", None, "2026-11-25")],
    )
    .await;
    let baby = unused_nhs(610_000_000);
    let feed = "/api/v1/admin/demographics/changes";

    // A bad mother number on line 3 refuses the whole file: the good line 2 is not applied.
    let bad = format!(
        "{HEADER_WITH_MOTHER}\n{baby},active,,2026-11-19,false,{}\n{},active,,2026-11-19,false,12345\n",
        mother.nhs,
        unused_nhs(620_000_000)
    );
    let r = post(&app, feed, ADMIN_TOKEN, bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("line 3") && message.contains("mother_nhs_number"),
        "{message}"
    );
    assert_eq!(app.store.demographics(baby).unwrap(), None);
    assert!(kinds(&app, COVENTRY_TOKEN, "birth").await.is_empty());

    let good = format!(
        "{HEADER_WITH_MOTHER}\n{baby},active,,2026-11-19,false,{}\n",
        mother.nhs
    );
    let r = post(&app, feed, ADMIN_TOKEN, good.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["births_notified"], 1);
    let births = kinds(&app, COVENTRY_TOKEN, "birth").await;
    assert_eq!(births.len(), 1);
    assert_eq!(births[0]["baby"]["nhs_number"], baby.digits());
    assert_eq!(births[0]["baby"]["date_of_birth"], "2026-11-19");
    assert_eq!(births[0]["mother"]["nhs_number"], mother.nhs);
    assert_eq!(births[0]["mother"]["local_id"], format!("T-{}", mother.nhs));
    assert!(kinds(&app, WESTMINSTER_TOKEN, "birth").await.is_empty());
    let audit = app.last_audit("demographics.birth", None).await.unwrap();
    assert_eq!(audit["subject_nhs"], baby.digits());
    // The feed replayed: nobody is told twice.
    let r = post(&app, feed, ADMIN_TOKEN, good).await;
    assert_eq!(r.json()["notifications"], 0);
    assert_eq!(kinds(&app, COVENTRY_TOKEN, "birth").await.len(), 1);

    // No plan for the baby 14 days after the EDD: one reminder, naming the baby. (The demo
    // data has UCPPs of its own long past their EDD: they are reminded on the first run.)
    let ours = |n: &serde_json::Value| n["mother"]["nhs_number"] == mother.nhs.as_str();
    run_birth_reminders(&app).await;
    app.clock.set(day("2026-12-08"));
    run_birth_reminders(&app).await;
    let early = kinds(&app, COVENTRY_TOKEN, "birth-reminder").await;
    assert!(
        !early.iter().any(ours),
        "13 days after the EDD is too early"
    );
    app.clock.set(day("2026-12-09"));
    assert!(run_birth_reminders(&app).await >= 1);
    assert_eq!(run_birth_reminders(&app).await, 0);
    let reminders: Vec<_> = kinds(&app, COVENTRY_TOKEN, "birth-reminder")
        .await
        .into_iter()
        .filter(ours)
        .collect();
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0]["mother"]["nhs_number"], mother.nhs);
    assert_eq!(reminders[0]["babies"][0]["nhs_number"], baby.digits());
}

#[tokio::test]
async fn an_adoption_invalidation_hides_the_plans_and_tells_each_la_without_the_new_number() {
    let app = spawn_app();
    // The shared child (Coventry and Westminster), invalidated for adoption with a new number.
    let old = "9990597634";
    let new = unused_nhs(630_000_000);
    let body =
        format!("{HEADER_DEMOGRAPHICS}\n{old},invalidated-adoption,{new},2013-05-31,false\n");
    let feed = "/api/v1/admin/demographics/changes";
    let r = post(&app, feed, ADMIN_TOKEN, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["adoption_invalidated_with_records"].as_u64(),
            j["records_moved"].as_u64(),
            j["notifications"].as_u64()
        ),
        (Some(1), Some(0), Some(2))
    );
    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let n = kinds(&app, token, "adoption-invalidation").await;
        assert_eq!(n.len(), 1);
        assert_eq!(n[0]["nhs_number"], old);
        assert_eq!(n[0]["records_moved"], false);
        let text = n[0].to_string();
        assert!(!text.contains(&new.digits()), "{text}");
    }
    // The old number no longer flags; the new one never did.
    let uri = |n: &str| {
        format!("/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{n}")
    };
    assert_eq!(app.get(&uri(old), Some(ED_TOKEN)).await.json()["total"], 0);
    assert_eq!(
        app.get(&uri(&new.digits()), Some(ED_TOKEN)).await.json()["total"],
        0
    );
    assert_eq!(app.store.demographics(new).unwrap(), None);
    assert_eq!(
        app.store
            .records_held(cpis_domain::NhsNumber::parse(old).unwrap())
            .unwrap()
            .len(),
        2
    );
    let r = post(&app, feed, ADMIN_TOKEN, body).await;
    assert_eq!(r.json()["notifications"], 0);
}
