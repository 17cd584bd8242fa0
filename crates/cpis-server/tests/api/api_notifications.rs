//! The LA notification API (SPEC 3.3, rule 3): `GET /api/v1/notifications?after=…&limit=…` and
//! `POST /api/v1/notifications/{id}/ack`. An LA only ever sees and acknowledges its own.

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;

/// Unscheduled lookups at one-minute intervals: the shared child from ED, ED2 and ED again, then a
/// Coventry-only child from ED2. Coventry gets four access notifications, Westminster three.
async fn make_notifications(app: &TestApp) -> (Person, Vec<chrono::DateTime<chrono::Utc>>) {
    let child = spare_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2026-03-01", None)],
    )
    .await;
    let start = day("2026-11-20");
    let mut times = Vec::new();
    for (i, (nhs, token)) in [
        (SHARED_CHILD, ED_TOKEN),
        (SHARED_CHILD, ED2_TOKEN),
        (SHARED_CHILD, ED_TOKEN),
        (child.nhs.as_str(), ED2_TOKEN),
    ]
    .into_iter()
    .enumerate()
    {
        let at = start + chrono::Duration::minutes(i as i64 + 1);
        app.clock.set(at);
        app.notifying_lookup(nhs, token).await;
        times.push(at);
    }
    (child, times)
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn access_time(n: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(n["access"]["time"].as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[tokio::test]
async fn paging_with_limit_one_walks_every_notification_in_order() {
    let app = spawn_app();
    let (child, times) = make_notifications(&app).await;
    let all = app.all_notifications(COVENTRY_TOKEN).await;
    let access: Vec<&Value> = all.iter().filter(|n| n["kind"] == "access").collect();
    assert_eq!(access.len(), 4, "{all:#?}");
    let seen: Vec<(String, chrono::DateTime<chrono::Utc>)> = access
        .iter()
        .map(|n| {
            (
                n["child"]["nhs_number"].as_str().unwrap().to_owned(),
                access_time(n),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (SHARED_CHILD.to_owned(), times[0]),
            (SHARED_CHILD.to_owned(), times[1]),
            (SHARED_CHILD.to_owned(), times[2]),
            (child.nhs.clone(), times[3]),
        ],
        "oldest first"
    );
    let orgs: Vec<&str> = access
        .iter()
        .map(|n| n["access"]["organisation"]["ods_code"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, [ED_SETTING, ED2_SETTING, ED_SETTING, ED2_SETTING]);

    // limit=1 from the start: one item a page, the cursor moves forward, the same sequence.
    let mut walked = Vec::new();
    let mut after = String::new();
    let mut last_cursor = 0u64;
    for _ in 0..=all.len() + 1 {
        let page = app
            .notifications_page(COVENTRY_TOKEN, &format!("?limit=1&after={after}"))
            .await;
        let items = page["notifications"].as_array().unwrap();
        assert!(items.len() <= 1, "{page:#}");
        let next = page["next_cursor"].as_str().unwrap().to_owned();
        match items.first() {
            Some(n) => {
                assert_eq!(n["cursor"].as_str().unwrap(), next, "{page:#}");
                let c: u64 = next.parse().expect("numeric cursor");
                assert!(c > last_cursor, "cursors increase");
                last_cursor = c;
                assert_eq!(page["more"], true);
                walked.push(n.clone());
            }
            None => {
                assert_eq!(page["more"], false, "{page:#}");
                if !after.is_empty() {
                    assert_eq!(next, after, "an empty page keeps the cursor");
                }
                break;
            }
        }
        after = next;
    }
    assert_eq!(ids(&walked), ids(&all), "limit=1 walks the same items");
    assert_eq!(walked, all);

    // A cursor from the middle resumes right after it.
    let mid = all[1]["cursor"].as_str().unwrap();
    let page = app
        .notifications_page(COVENTRY_TOKEN, &format!("?after={mid}"))
        .await;
    assert_eq!(
        ids(page["notifications"].as_array().unwrap()),
        ids(&all[2..])
    );
    assert_eq!(page["more"], false);
    // Past the end: empty, same cursor.
    let end = all.last().unwrap()["cursor"].as_str().unwrap();
    let page = app
        .notifications_page(COVENTRY_TOKEN, &format!("?after={end}"))
        .await;
    assert!(page["notifications"].as_array().unwrap().is_empty());
    assert_eq!(page["next_cursor"], end);
}

#[tokio::test]
async fn the_access_notification_carries_the_access_and_the_las_own_record() {
    let app = spawn_app();
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    for (token, la, local_id, start) in [
        (COVENTRY_TOKEN, COVENTRY, "COV-001010", "2025-09-07"),
        (WESTMINSTER_TOKEN, WESTMINSTER, "WES-001911", "2026-08-24"),
    ] {
        let n = app.access_notifications(token, SHARED_CHILD).await;
        assert_eq!(n.len(), 1);
        let n = &n[0];
        assert!(uuid::Uuid::parse_str(n["id"].as_str().unwrap()).is_ok());
        assert_eq!(n["la"], la);
        assert_eq!(n["child"]["local_id"], local_id, "the LA's own record");
        assert_eq!(n["child"]["date_of_birth"], "2013-05-31");
        let plans = n["child"]["plans"].as_array().unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0]["plan_type"], "CPP");
        assert_eq!(plans[0]["start_date"], start);
        assert_eq!(plans[0]["state"], "active");
        assert_eq!(n["access"]["organisation"]["ods_code"], ED_SETTING);
        assert_eq!(n["access"]["user_name"], "ed.clinician name");
        assert_eq!(n["access"]["setting_type"], "emergency-department");
        assert_eq!(access_time(n), day("2026-11-20"));
    }
}

#[tokio::test]
async fn bad_cursors_and_limits_are_400() {
    let app = spawn_app();
    make_notifications(&app).await;
    for query in [
        "?after=abc",
        "?after=-1",
        "?after=1.5",
        "?after=99999999999999999999999",
        "?limit=0",
        "?limit=1001",
        "?limit=5000",
    ] {
        let r = app
            .get(
                &format!("/api/v1/notifications{query}"),
                Some(COVENTRY_TOKEN),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text());
        assert_eq!(r.json()["error"], "bad_request", "{query}");
    }
    for query in ["?limit=1000", "?limit=1", "?after=", "?after=0"] {
        app.notifications_page(COVENTRY_TOKEN, query).await;
    }
}

#[tokio::test]
async fn a_non_numeric_limit_gets_the_json_error_body() {
    let app = spawn_app();
    for query in ["?limit=abc", "?limit=-1", "?limit=99999999999"] {
        let r = app
            .get(
                &format!("/api/v1/notifications{query}"),
                Some(COVENTRY_TOKEN),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text());
        let body: Result<Value, _> = serde_json::from_slice(&r.body);
        assert!(
            body.as_ref().is_ok_and(|j| j["error"] == "bad_request"),
            "{query}: the API's JSON error body, got {:?}",
            r.text()
        );
    }
}

#[tokio::test]
async fn ack_is_idempotent_and_shows_in_the_list() {
    let app = spawn_app();
    make_notifications(&app).await;
    let all = app.all_notifications(COVENTRY_TOKEN).await;
    let id = all[1]["id"].as_str().unwrap().to_owned();
    assert!(all.iter().all(|n| n["acknowledged_at"].is_null()));

    let acked_at = day("2026-11-21");
    app.clock.set(acked_at);
    let r = app.ack(&id, Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let first = r.json();
    assert_eq!(first["already_acknowledged"], false);
    let at = first["acknowledged_at"].as_str().unwrap().to_owned();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&at).unwrap().to_utc(),
        acked_at
    );

    // Again, a day later: still 200, flagged, with the original time.
    app.clock.set(day("2026-11-22"));
    let r = app.ack(&id, Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["already_acknowledged"], true);
    assert_eq!(r.json()["acknowledged_at"], at.as_str());

    let after = app.all_notifications(COVENTRY_TOKEN).await;
    assert_eq!(ids(&after), ids(&all), "acknowledging removes nothing");
    for n in &after {
        if n["id"] == id.as_str() {
            assert_eq!(n["acknowledged_at"], at.as_str());
        } else {
            assert!(n["acknowledged_at"].is_null(), "only the one acked: {n:#}");
        }
    }
}

#[tokio::test]
async fn an_la_cannot_see_or_ack_another_las_notifications() {
    let app = spawn_app();
    make_notifications(&app).await;
    let cov = app.all_notifications(COVENTRY_TOKEN).await;
    let wes = app.all_notifications(WESTMINSTER_TOKEN).await;
    assert_eq!(cov.len(), 4);
    assert_eq!(wes.len(), 3);
    assert!(cov.iter().all(|n| n["la"] == COVENTRY));
    assert!(wes.iter().all(|n| n["la"] == WESTMINSTER));
    let cov_ids = ids(&cov);
    assert!(ids(&wes).iter().all(|id| !cov_ids.contains(id)));

    // Westminster paging with limit=1, and from Coventry's cursors, only meets its own.
    let mut after = String::new();
    let mut walked = Vec::new();
    loop {
        let page = app
            .notifications_page(WESTMINSTER_TOKEN, &format!("?limit=1&after={after}"))
            .await;
        let items = page["notifications"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        walked.extend(items);
        after = page["next_cursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(walked, wes);
    for n in &cov {
        let page = app
            .notifications_page(
                WESTMINSTER_TOKEN,
                &format!("?after={}", n["cursor"].as_str().unwrap()),
            )
            .await;
        assert!(page["notifications"].as_array().unwrap().iter().all(
            |m| m["la"] == WESTMINSTER && !cov_ids.contains(&m["id"].as_str().unwrap().into())
        ));
    }

    // Westminster acking Coventry's notification: 404, exactly like an unknown id, and no effect.
    let theirs = cov[0]["id"].as_str().unwrap();
    let r = app.ack(theirs, Some(WESTMINSTER_TOKEN)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let unknown = app
        .ack(&uuid::Uuid::new_v4().to_string(), Some(WESTMINSTER_TOKEN))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        problem_of(&r),
        problem_of(&unknown),
        "a foreign id looks like a missing one"
    );
    let cov_after = app.all_notifications(COVENTRY_TOKEN).await;
    assert!(
        cov_after[0]["acknowledged_at"].is_null(),
        "still unacknowledged: {:#}",
        cov_after[0]
    );
    // The probe of Coventry's notification is on record as a refused access by Westminster.
    let refused: Vec<_> = app
        .store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("notification.ack".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.outcome == cpis_domain::AuditOutcome::Denied)
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.entry.detail.as_deref().unwrap_or("").contains(theirs)
                && r.entry.actor.organisation.as_deref() == Some(WESTMINSTER)),
        "{refused:?}"
    );
    // Coventry can still acknowledge it for the first time.
    let r = app.ack(theirs, Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["already_acknowledged"], false);
}

#[tokio::test]
async fn ack_of_a_non_uuid_or_unknown_id_is_404() {
    let app = spawn_app();
    make_notifications(&app).await;
    for id in [
        "not-a-uuid",
        "1",
        "00000000-0000-0000-0000-000000000000",
        &uuid::Uuid::new_v4().to_string(),
        "%27%20OR%201%3D1",
    ] {
        let r = app.ack(id, Some(COVENTRY_TOKEN)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text());
        assert_eq!(r.json()["error"], "not_found", "{id}");
    }
    assert!(app
        .all_notifications(COVENTRY_TOKEN)
        .await
        .iter()
        .all(|n| n["acknowledged_at"].is_null()));
}

#[tokio::test]
async fn notifications_need_an_la_token() {
    let app = spawn_app();
    make_notifications(&app).await;
    let id = app.all_notifications(COVENTRY_TOKEN).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get("/api/v1/notifications", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(r.json()["error"], "unauthenticated");
    let r = app.get("/api/v1/notifications", Some("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.ack(&id, None).await.status, StatusCode::UNAUTHORIZED);
    for token in [ED_TOKEN, GP_TOKEN] {
        let r = app.get("/api/v1/notifications", Some(token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.json()["error"], "forbidden");
        assert_eq!(
            app.ack(&id, Some(token)).await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert!(app.all_notifications(COVENTRY_TOKEN).await[0]["acknowledged_at"].is_null());
}

#[tokio::test]
async fn silent_and_missed_lookups_add_nothing_to_the_inbox() {
    let app = spawn_app();
    let before = app.all_notifications(COVENTRY_TOKEN).await;
    app.care_team(SHARED_CHILD, ED_TOKEN, Some("false")).await;
    app.care_team(SHARED_CHILD, ED_SILENT_TOKEN, Some("true"))
        .await;
    app.care_team(SHARED_CHILD, GP_TOKEN, Some("true")).await;
    app.care_team("9434765919", ED_TOKEN, Some("true")).await;
    assert_eq!(app.all_notifications(COVENTRY_TOKEN).await, before);
    app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
    assert_eq!(
        app.all_notifications(COVENTRY_TOKEN).await.len(),
        before.len() + 1
    );
}

#[tokio::test]
async fn a_cursor_beyond_the_end_never_rewinds_to_the_start() {
    let app = spawn_app();
    make_notifications(&app).await;
    for after in [
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let r = app
            .get(
                &format!("/api/v1/notifications?after={after}"),
                Some(COVENTRY_TOKEN),
            )
            .await;
        assert!(
            r.status == StatusCode::BAD_REQUEST
                || r.json()["notifications"]
                    .as_array()
                    .is_some_and(Vec::is_empty),
            "after={after}: {}",
            r.text()
        );
    }
}

/// RFC 9457 problem details on every `/api/v1` error: type, title, status, detail, instance, the
/// trace id, and cpis's `error` code; 405 with a body and `Allow`; query errors in words.
#[tokio::test]
async fn api_errors_are_problem_details() {
    let app = spawn_app();
    let check = |r: &Reply, status: u16, code: &str, instance: &str| {
        assert_eq!(r.status.as_u16(), status, "{}", r.text());
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{instance}"
        );
        let j = r.json();
        assert_eq!(j["type"], "about:blank");
        assert_eq!(j["status"], status);
        assert!(j["title"].is_string() && j["detail"].is_string(), "{j}");
        assert_eq!(j["error"], code, "{j}");
        assert_eq!(j["message"], j["detail"]);
        assert_eq!(j["instance"], instance, "{j}");
        assert!(j["trace_id"].is_string(), "{j}");
        j
    };
    let r = app
        .get("/api/v1/notifications?limit=abc", Some(COVENTRY_TOKEN))
        .await;
    let j = check(&r, 400, "bad_request", "/api/v1/notifications");
    assert_eq!(
        j["detail"],
        "query parameter 'limit' must be a whole number"
    );
    assert!(!r.text().contains("deserialize"), "{}", r.text());

    let r = app
        .request(
            Method::DELETE,
            "/api/v1/notifications",
            &[("authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
            Body::empty(),
        )
        .await;
    check(&r, 405, "method_not_allowed", "/api/v1/notifications");
    assert!(
        r.headers["allow"].to_str().unwrap().contains("GET"),
        "{:?}",
        r.headers
    );

    let r = app
        .request(
            Method::GET,
            "/api/v1/notifications",
            &[("traceid", "problem-trace-1")],
            Body::empty(),
        )
        .await;
    let j = check(&r, 401, "unauthenticated", "/api/v1/notifications");
    assert_eq!(j["trace_id"], "problem-trace-1");

    // A wrong password is not told to send a bearer token.
    let r = app
        .request(
            Method::POST,
            "/auth/login",
            &[("content-type", "application/json")],
            Body::from(r#"{"username":"nobody.here","password":"wrong password 123"}"#),
        )
        .await;
    let j = check(&r, 401, "sign_in_failed", "/auth/login");
    assert!(!j["detail"].as_str().unwrap().contains("Bearer"), "{j}");
    assert!(r.headers.get("www-authenticate").is_none());
}
