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
