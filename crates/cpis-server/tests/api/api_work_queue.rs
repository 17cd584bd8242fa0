//! The LA work queue over the API (docs/WORKFLOW.md, "The LA work queue"): acknowledgement
//! bodies, bulk acknowledgement, assignment, list filters, and escalation by the service clock.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// Three lookups of the shared child (ED, ED2, ED) and one of a Coventry-only child (ED2), a
/// minute apart: Coventry's four access notifications, oldest first.
async fn four(app: &TestApp) -> (Person, Vec<Value>) {
    let child = spare_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2026-03-01", None)],
    )
    .await;
    let start = day("2026-11-20");
    for (i, (nhs, token)) in [
        (SHARED_CHILD, ED_TOKEN),
        (SHARED_CHILD, ED2_TOKEN),
        (SHARED_CHILD, ED_TOKEN),
        (child.nhs.as_str(), ED2_TOKEN),
    ]
    .into_iter()
    .enumerate()
    {
        app.clock
            .set(start + chrono::Duration::minutes(i as i64 + 1));
        app.notifying_lookup(nhs, token).await;
    }
    let all: Vec<Value> = app
        .all_notifications(COVENTRY_TOKEN)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "access")
        .collect();
    assert_eq!(all.len(), 4);
    (child, all)
}

fn id(n: &Value) -> String {
    n["id"].as_str().unwrap().to_owned()
}

async fn find(app: &TestApp, id: &str) -> Value {
    app.all_notifications(COVENTRY_TOKEN)
        .await
        .into_iter()
        .find(|n| n["id"] == id)
        .expect("the notification")
}

fn ids_of(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "access")
        .map(id)
        .collect()
}

#[tokio::test]
async fn acknowledging_records_who_when_outcome_and_note_and_the_first_wins() {
    let app = spawn_app();
    let (_, all) = four(&app).await;
    let n = id(&all[0]);
    let at = day("2026-11-21");
    app.clock.set(at);
    let uri = format!("/api/v1/notifications/{n}/ack");
    let r = app
        .post_json(
            &uri,
            COVENTRY_TOKEN,
            &json!({"outcome": "referred-to-mash", "note": "Rang the MASH duty line"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["already_acknowledged"], false);
    let r = app
        .post_json(&uri, COVENTRY_TOKEN, &json!({"outcome": "known-no-action"}))
        .await;
    assert_eq!(r.json()["already_acknowledged"], true);
    let stored = find(&app, &n).await;
    assert_eq!(stored["outcome"], "referred-to-mash");
    assert_eq!(stored["note"], "Rang the MASH duty line");
    assert_eq!(stored["acknowledged_by"]["id"], "coventry.system");
    assert!(stored["acknowledged_by"]["name"].is_string());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(stored["acknowledged_at"].as_str().unwrap())
            .unwrap()
            .to_utc(),
        at
    );
    // An empty body still acknowledges (receipt, no outcome).
    let other = id(&all[1]);
    assert_eq!(
        app.ack(&other, Some(COVENTRY_TOKEN)).await.status,
        StatusCode::OK
    );
    assert!(find(&app, &other).await["outcome"].is_null());
    let audit = app.last_audit("notification.ack", None).await.unwrap();
    assert_eq!(audit["outcome"], "success");
}

#[tokio::test]
async fn bad_acknowledgements_are_refused_and_change_nothing() {
    let app = spawn_app();
    let (_, all) = four(&app).await;
    let n = id(&all[0]);
    let uri = format!("/api/v1/notifications/{n}/ack");
    let long = "x".repeat(1001);
    for (body, says) in [
        (json!({"outcome": "shrug"}), "outcome must be one of"),
        (
            json!({"note": long}),
            "note must be at most 1000 characters",
        ),
        (
            json!({"outcome": "other", "extra": 1}),
            "the body must be JSON",
        ),
    ] {
        let r = app.post_json(&uri, COVENTRY_TOKEN, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.text().contains(says), "{}", r.text());
    }
    let r = app
        .request(
            axum::http::Method::POST,
            &uri,
            &[("authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
            "{not json",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Westminster cannot acknowledge Coventry's notification.
    let r = app
        .post_json(&uri, WESTMINSTER_TOKEN, &json!({"outcome": "other"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        find(&app, &n).await["acknowledged_at"].is_null(),
        "nothing acknowledged"
    );
}

#[tokio::test]
async fn bulk_acknowledgement_reports_each_id() {
    let app = spawn_app();
    let (_, all) = four(&app).await;
    let westminster = app.all_notifications(WESTMINSTER_TOKEN).await;
    let theirs = id(&westminster[0]);
    let (a, b) = (id(&all[0]), id(&all[1]));
    app.ack(&b, Some(COVENTRY_TOKEN)).await;

    // A wrong body writes nothing.
    for body in [
        json!({"ids": [a], "outcome": "shrug"}),
        json!({"ids": [], "outcome": "other"}),
        json!({"ids": [a], "note": "y".repeat(1001)}),
    ] {
        let r = app
            .post_json("/api/v1/notifications/ack", COVENTRY_TOKEN, &body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert!(find(&app, &a).await["acknowledged_at"].is_null());

    let r = app
        .post_json(
            "/api/v1/notifications/ack",
            COVENTRY_TOKEN,
            &json!({"ids": [a, b, theirs, "junk"], "outcome": "social-worker-informed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let reply = r.json();
    let statuses: Vec<&str> = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "acknowledged",
            "already-acknowledged",
            "not-found",
            "not-found"
        ]
    );
    assert_eq!(find(&app, &a).await["outcome"], "social-worker-informed");
    assert!(
        find(&app, &b).await["outcome"].is_null(),
        "the first acknowledgement stays"
    );
    let still = app
        .all_notifications(WESTMINSTER_TOKEN)
        .await
        .into_iter()
        .find(|n| n["id"] == theirs.as_str())
        .unwrap();
    assert!(
        still["acknowledged_at"].is_null(),
        "another LA's is untouched"
    );
}

#[tokio::test]
async fn assignment_to_a_team_or_to_me_with_the_assigned_to_me_filter() {
    let app = spawn_app();
    let (_, all) = four(&app).await;
    let (a, b) = (id(&all[0]), id(&all[1]));
    let r = app
        .post_json(
            &format!("/api/v1/notifications/{a}/assign"),
            COVENTRY_TOKEN,
            &json!({"to": "MASH team"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(find(&app, &a).await["assigned_to"], "MASH team");
    let r = app
        .post_json(
            &format!("/api/v1/notifications/{b}/assign"),
            COVENTRY_TOKEN,
            &json!({"to_me": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mine = app
        .notifications_page(COVENTRY_TOKEN, "?assigned_to_me=true")
        .await;
    assert_eq!(ids_of(&mine), vec![b]);
    let audit = app.last_audit("notification.assign", None).await.unwrap();
    assert_eq!(audit["outcome"], "success");

    for body in [
        json!({}),
        json!({"to": " "}),
        json!({"to": "x", "to_me": true}),
    ] {
        let r = app
            .post_json(
                &format!("/api/v1/notifications/{a}/assign"),
                COVENTRY_TOKEN,
                &body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = app
        .post_json(
            &format!("/api/v1/notifications/{a}/assign"),
            WESTMINSTER_TOKEN,
            &json!({"to": "Intruders"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        find(&app, &a).await["assigned_to"],
        "MASH team",
        "unchanged"
    );
}

#[tokio::test]
async fn list_filters_with_the_cursor() {
    let app = spawn_app();
    let (child, all) = four(&app).await;
    let by_child = app
        .notifications_page(COVENTRY_TOKEN, &format!("?nhs_number={SHARED_CHILD}"))
        .await;
    assert_eq!(
        ids_of(&by_child),
        all[..3].iter().map(id).collect::<Vec<_>>()
    );
    let by_setting = app
        .notifications_page(COVENTRY_TOKEN, &format!("?setting={ED2_SETTING}"))
        .await;
    assert_eq!(ids_of(&by_setting), [id(&all[1]), id(&all[3])]);
    let kind = app.notifications_page(COVENTRY_TOKEN, "?kind=access").await;
    assert!(kind["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["kind"] == "access"));
    app.ack(&id(&all[0]), Some(COVENTRY_TOKEN)).await;
    let open = app
        .notifications_page(COVENTRY_TOKEN, "?unacknowledged=true&kind=access")
        .await;
    assert_eq!(ids_of(&open), all[1..].iter().map(id).collect::<Vec<_>>());
    let window = app
        .notifications_page(
            COVENTRY_TOKEN,
            &format!(
                "?from={}&to={}",
                url_encode(&(day("2026-11-20") + chrono::Duration::minutes(2)).to_rfc3339()),
                url_encode(&(day("2026-11-20") + chrono::Duration::minutes(4)).to_rfc3339())
            ),
        )
        .await;
    assert_eq!(ids_of(&window), [id(&all[1]), id(&all[2])]);
    // The cursor still means "after": the child's notifications after its first.
    let cursor = all[0]["cursor"].as_str().unwrap();
    let after = app
        .notifications_page(
            COVENTRY_TOKEN,
            &format!("?nhs_number={}&after={cursor}", child.nhs),
        )
        .await;
    assert_eq!(ids_of(&after), [id(&all[3])]);
    for bad in [
        "?nhs_number=123",
        "?kind=gossip",
        "?setting=%20!",
        "?from=yesterday",
        "?unacknowledged=maybe",
    ] {
        let r = app
            .get(&format!("/api/v1/notifications{bad}"), Some(COVENTRY_TOKEN))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
    }
}

#[tokio::test]
async fn an_overdue_notification_is_escalated_exactly_once() {
    let app = spawn_app();
    let (_, all) = four(&app).await;
    let created = day("2026-11-20") + chrono::Duration::minutes(4);
    app.ack(&id(&all[1]), Some(COVENTRY_TOKEN)).await;
    app.clock.set(created + chrono::Duration::hours(23));
    assert_eq!(app.escalate(), 0, "not yet overdue");
    app.clock.set(created + chrono::Duration::hours(24));
    // Several servers' housekeeping at once: each notification escalated once.
    let runs: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3).map(|_| s.spawn(|| app.escalate())).collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let westminster = app
        .all_notifications(WESTMINSTER_TOKEN)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "escalation")
        .count();
    assert!(
        westminster > 0,
        "Westminster's own are escalated to Westminster"
    );
    // The server's own housekeeping may have taken some meanwhile: never more than one each.
    // Coventry's two items: the ED lookups of the shared child (two notifications, one item)
    // and the other child.
    assert!(runs <= 2 + westminster, "{runs} escalated");
    assert_eq!(app.escalate(), 0, "never repeated");
    // Later runs escalate what has become overdue since, never these again.
    app.clock.set(created + chrono::Duration::hours(72));
    app.escalate();
    let raised: Vec<Value> = app
        .all_notifications(COVENTRY_TOKEN)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "escalation")
        .collect();
    let distinct: std::collections::BTreeSet<&str> = raised
        .iter()
        .map(|e| e["overdue"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), raised.len(), "none escalated twice");
    for n in [&all[0], &all[3]] {
        assert!(distinct.contains(id(n).as_str()), "{n}");
    }
    // The repeat lookup at the same setting is part of the first's item: marked escalated with
    // it, not escalated again on its own.
    assert!(!distinct.contains(id(&all[2]).as_str()));
    assert!(
        find(&app, &id(&all[2])).await["escalated_at"].is_string(),
        "marked with its item"
    );
    let overdue: Vec<&str> = raised
        .iter()
        .map(|e| e["overdue"]["id"].as_str().unwrap())
        .collect();
    assert!(
        !overdue.contains(&id(&all[1]).as_str()),
        "acknowledged: not escalated"
    );
    assert!(raised[0]["child"]["nhs_number"].is_string());
    assert!(find(&app, &id(&all[0])).await["escalated_at"].is_string());
    let audit = app.last_audit("notification.escalate", None).await.unwrap();
    assert_eq!(audit["outcome"], "success");
}
