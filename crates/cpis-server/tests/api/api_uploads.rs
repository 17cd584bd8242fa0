//! The LA upload API over HTTP: authentication, bad input, reports, idempotency, isolation.

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app();
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Readiness names the backend the app runs on.
    assert_eq!(r.json()["database"], app.backend());
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn uploads_need_a_valid_token_and_store_nothing_without_one() {
    let app = spawn_app();
    let before = app.uploads_stored();
    let body = demo_file("errors-E08000026.csv");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/uploads")
        .header("content-type", "text/csv")
        .body(Body::from(body.clone()))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(r.json()["error"], "unauthenticated");
    for bad in ["wrong-token", "", "demo-E08000026"] {
        let r = app.upload("", bad, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {bad:?}");
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/uploads")
        .header("authorization", format!("Basic {COVENTRY_TOKEN}"))
        .header("content-type", "text/csv")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.uploads_stored(), before);
}

#[tokio::test]
async fn wrong_content_type_oversize_and_bad_metadata_are_refused_cleanly() {
    let app = spawn_app_with(cpis_server::ServerConfig {
        max_upload_bytes: 2048,
        ..Default::default()
    });
    let before = app.uploads_stored();
    let records_before = app.store.counts().unwrap().records;
    let small = format!("{HEADER}\n");

    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/uploads")
        .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(small.clone()))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["error"], "unsupported_media_type");

    let big = demo_file("E08000026.csv");
    assert!(big.len() > 2048);
    let r = app.upload("", COVENTRY_TOKEN, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"], "payload_too_large");

    for q in [
        "?mode=replace",
        "?file_id=a/b",
        "?file_date=2026-02-30",
        "?file_date=yesterday",
    ] {
        let r = app.upload(q, COVENTRY_TOKEN, small.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(r.json()["error"], "bad_request");
    }
    assert_eq!(app.uploads_stored(), before);
    assert_eq!(app.store.counts().unwrap().records, records_before);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn coded_upload(query: &str, encoding: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/uploads{query}"))
        .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
        .header("content-type", "text/csv")
        .header("content-encoding", encoding)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn a_gzip_body_is_decoded_and_loads_like_the_plain_file() {
    let app = spawn_app();
    let plain =
        format!("{HEADER}\nupsert,9990597634,COV-GZ,A,B,2013-05-31,CPP,2025-09-07,,,false\n");
    let r = app
        .send(coded_upload(
            "?file_id=gz-1",
            "gzip",
            gzip(plain.as_bytes()),
        ))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["file_outcome"], "CPF02");
    assert_eq!(j["counts"]["accepted"], 1);
    // The content hash is of the decoded file: the same file sent plain is a duplicate of it.
    let again = app.upload("?file_id=gz-2", COVENTRY_TOKEN, plain).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["duplicate_of"], j["id"]);
}

#[tokio::test]
async fn compressed_bodies_are_bounded_by_their_decoded_size_and_bad_codings_are_refused() {
    let app = spawn_app_with(cpis_server::ServerConfig {
        max_upload_bytes: 64 * 1024,
        ..Default::default()
    });
    let before = app.uploads_stored();
    // A zip bomb: 8 MiB of the same line compresses to a few KiB.
    let line = "upsert,9990597634,COV-GZ,A,B,2013-05-31,CPP,2025-09-07,,,false\n";
    let bomb = gzip(format!("{HEADER}\n{}", line.repeat(8 * 1024 * 1024 / line.len())).as_bytes());
    assert!(bomb.len() < 64 * 1024);
    let r = app.send(coded_upload("?file_id=bomb", "gzip", bomb)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());

    let r = app
        .send(coded_upload("?file_id=bad", "gzip", format!("{HEADER}\n")))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("not valid gzip"),
        "{}",
        r.text()
    );

    let r = app
        .send(coded_upload("?file_id=br", "br", format!("{HEADER}\n")))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Content-Encoding 'br'"));
    assert_eq!(app.uploads_stored(), before, "nothing was recorded");
}

#[tokio::test]
async fn a_body_announced_larger_than_the_limit_is_refused_before_it_is_read() {
    let app = spawn_app_with(cpis_server::ServerConfig {
        max_upload_bytes: 2048,
        ..Default::default()
    });
    // A body that never ends: reading any of it would hang the request.
    let endless = Body::from_stream(futures_util::stream::pending::<
        Result<axum::body::Bytes, std::io::Error>,
    >());
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/uploads?file_id=huge")
        .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
        .header("content-type", "text/csv")
        .header("content-length", "1000000000")
        .body(endless)
        .unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), app.send(req))
        .await
        .expect("answered without reading the body");
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn errors_file_gets_per_record_codes_in_json_and_csv() {
    let app = spawn_app();
    let r = app
        .upload(
            "?file_id=cov-errors-1&file_date=2026-11-20",
            COVENTRY_TOKEN,
            demo_file("errors-E08000026.csv"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["file_outcome"], "CPF03");
    assert_eq!(j["la"], COVENTRY);
    assert_eq!(j["counts"]["accepted"], 4);
    assert_eq!(j["counts"]["rejected"], 11);
    let codes: Vec<&str> = j["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "CPR01", "CPR02", "CPR03", "CPR04", "CPR04", "CPR05", "CPR06", "CPR06", "CPR06",
            "CPR06", "CPR07", "CPR07", "CPR07", "CPR07", "CPR07"
        ]
    );
    let details: Vec<&str> = j["records"].as_array().unwrap()[10..]
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "BAD_DATE",
            "END_BEFORE_START",
            "UNKNOWN_PLAN_TYPE",
            "UCPP_WITHOUT_EDD",
            "DUPLICATE_ROW"
        ]
    );
    assert!(j["records"][5]["new_nhs_number"]
        .as_str()
        .is_some_and(|n| n.len() == 10));
    let id = j["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/uploads/{id}").as_str()
    );

    let r = app
        .get(
            &format!("/api/v1/uploads/{id}?format=csv"),
            Some(COVENTRY_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "row,nhs_number,outcome,detail_code,message,new_nhs_number,local_id"
    );
    assert_eq!(lines.len(), 16);
    assert!(lines[11].starts_with("11,") && lines[11].contains(",CPR07,BAD_DATE,"));

    let req = Request::builder()
        .uri(format!("/api/v1/uploads/{id}"))
        .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
        .header("accept", "text/csv")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.text(), csv);

    let r = app
        .get(
            &format!("/api/v1/uploads/{id}?outcome=CPR04"),
            Some(COVENTRY_TOKEN),
        )
        .await;
    let rows = r.json()["records"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["outcome"] == "CPR04"));

    let r = app
        .get(
            &format!("/api/v1/uploads/{id}?after=3&limit=2"),
            Some(COVENTRY_TOKEN),
        )
        .await;
    let j = r.json();
    let rows: Vec<u64> = j["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [4, 5]);
    assert_eq!(j["records_next_after"], 5);

    let r = app
        .get(
            &format!("/api/v1/uploads/{id}?outcome=CPR99"),
            Some(COVENTRY_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_same_file_twice_changes_nothing_the_second_time() {
    let app = spawn_app();
    let body = demo_file("errors-E08000026.csv");
    let first = app
        .upload("?file_id=f1", COVENTRY_TOKEN, body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let counts = app.store.counts().unwrap();
    let again = app
        .upload("?file_id=f1", COVENTRY_TOKEN, body.clone())
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let first_id = first.json()["id"].clone();
    {
        let reply = &again;
        let j = reply.json();
        assert_ne!(j["id"], first_id, "the duplicate has its own report");
        assert_eq!(j["status"], "duplicate");
        assert_eq!(j["duplicate_of"], first_id);
        assert_eq!(j["file_outcome"], serde_json::Value::Null);
        let message = j["message"].as_str().unwrap();
        assert!(message.contains(first_id.as_str().unwrap()), "{message}");
        assert!(message.starts_with("Duplicate: nothing was applied."));
        assert_eq!(
            reply.headers["location"],
            format!("/api/v1/uploads/{}", j["id"].as_str().unwrap()).as_str()
        );
    }
    let renamed = app.upload("?file_id=f2", COVENTRY_TOKEN, body).await;
    assert_eq!(
        renamed.status,
        StatusCode::OK,
        "same content under a new file id"
    );
    assert_eq!(renamed.json()["duplicate_of"], first_id);
    assert_eq!(renamed.json()["status"], "duplicate");
    let after = app.store.counts().unwrap();
    assert_eq!(after.records, counts.records);
    assert_eq!(after.plans, counts.plans);
}

#[tokio::test]
async fn an_la_never_sees_another_las_upload() {
    let app = spawn_app();
    let r = app
        .upload(
            "?file_id=x",
            COVENTRY_TOKEN,
            demo_file("errors-E08000026.csv"),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let theirs = app
        .get(&format!("/api/v1/uploads/{id}"), Some(WESTMINSTER_TOKEN))
        .await;
    let missing = app
        .get(
            &format!("/api/v1/uploads/{}", uuid::Uuid::new_v4()),
            Some(WESTMINSTER_TOKEN),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        problem_of(&theirs),
        problem_of(&missing),
        "a foreign upload looks exactly like a missing one"
    );
    let junk = app
        .get("/api/v1/uploads/not-a-uuid", Some(WESTMINSTER_TOKEN))
        .await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);
    let r = app
        .get(
            &format!("/api/v1/uploads/{id}?format=csv"),
            Some(WESTMINSTER_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/uploads/{id}/confirm"))
        .header("authorization", format!("Bearer {WESTMINSTER_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Every probe of Coventry's upload by Westminster is on record as a refused access.
    let refused: Vec<_> = app
        .store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("upload.".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.outcome == cpis_domain::AuditOutcome::Denied)
        .filter(|r| r.entry.detail.as_deref().unwrap_or("").contains(&id))
        .collect();
    let actions: Vec<_> = refused.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "upload.report").count(),
        2,
        "JSON and CSV report probes: {actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "upload.confirm").count(),
        1
    );
    assert!(refused
        .iter()
        .all(|r| r.entry.actor.organisation.as_deref() == Some(WESTMINSTER)));
}

#[tokio::test]
async fn a_westminster_upload_cannot_touch_coventry_records() {
    let app = spawn_app();
    // A child both LAs hold (see demo/README.md): Westminster deletes its own record only.
    let nhs = cpis_domain::NhsNumber::parse("9990597634").unwrap();
    let before = app.store.records_for(nhs).unwrap();
    assert_eq!(before.len(), 2);
    let body = format!("{HEADER}\ndelete,9990597634,,,,,,,,,\n");
    let r = app
        .upload("?file_id=wes-del", WESTMINSTER_TOKEN, body)
        .await;
    assert_eq!(r.json()["file_outcome"], "CPF02");
    let after = app.store.records_for(nhs).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].la.as_str(), COVENTRY);
    assert_eq!(
        after[0],
        before
            .iter()
            .find(|r| r.la.as_str() == COVENTRY)
            .unwrap()
            .clone()
    );
}

#[tokio::test]
async fn unsupported_format_and_malformed_files_are_reported_not_applied() {
    let app = spawn_app();
    let records = app.store.counts().unwrap().records;
    let r = app
        .upload(
            "?format=cpis-upload/2",
            COVENTRY_TOKEN,
            demo_file("E08000026.csv"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["file_outcome"], "CPF06");
    let report = r.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        report,
        format!("/api/v1/uploads/{}", r.json()["id"].as_str().unwrap())
    );
    let stored = app.get(&report, Some(COVENTRY_TOKEN)).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.json()["file_outcome"], "CPF06");
    let r = app
        .upload(
            "?file_id=bad-header",
            COVENTRY_TOKEN,
            "nhs,plan\n9434765919,CPP\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["file_outcome"], "CPF01");
    assert!(r.json()["message"].as_str().unwrap().contains("header"));
    let r = app.upload("?file_id=empty", COVENTRY_TOKEN, "").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["file_outcome"], "CPF01");
    // An unclosed quote is refused whole, with its line, and nothing of the file is applied.
    let r = app
        .upload(
            "?file_id=open-quote",
            COVENTRY_TOKEN,
            format!("{HEADER}\nupsert,9990597634,\"COV,A,B,2013-05-31,CPP,2025-09-07,,,false\nupsert,9990597634,COV,A,B,2013-05-31,LAC,2025-09-07,,,false\n"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["file_outcome"], "CPF01");
    assert!(r.json()["message"].as_str().unwrap().contains("line 2"));
    assert_eq!(app.store.counts().unwrap().records, records);
}

#[tokio::test]
async fn respond_async_returns_at_once_and_the_report_follows() {
    let app = spawn_app();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/uploads?file_id=async-1")
        .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
        .header("content-type", "text/csv; charset=utf-8")
        .header("prefer", "respond-async")
        .body(Body::from(demo_file("errors-E08000026.csv")))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.headers["location"].to_str().unwrap().to_owned();
    let mut last = None;
    for _ in 0..200 {
        let r = app.get(&location, Some(COVENTRY_TOKEN)).await;
        assert_eq!(r.status, StatusCode::OK);
        let j = r.json();
        if j["status"] == "completed" {
            last = Some(j);
            break;
        }
        assert_eq!(j["status"], "processing");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(last.expect("upload completes")["file_outcome"], "CPF03");
}

#[tokio::test]
async fn full_upload_that_would_end_most_plans_is_held_until_confirmed() {
    let app = spawn_app();
    let la = cpis_domain::OdsCode::parse(COVENTRY).unwrap();
    let records = app.store.la_record_count(&la).unwrap();
    assert!(records > 10);
    // A full file listing one child: every other Coventry plan would end.
    let body =
        format!("{HEADER}\nupsert,9990597634,COV-001010,A,B,2013-05-31,CPP,2025-09-07,,,false\n");
    let r = app
        .upload(
            "?mode=full&file_id=full-1&file_date=2026-11-20",
            COVENTRY_TOKEN,
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "held-for-confirmation");
    assert_eq!(j["file_outcome"], serde_json::Value::Null);
    let id = j["id"].as_str().unwrap().to_owned();
    // Another Coventry child, listed in the demo file with an open plan but not in this one.
    let other = demo_file("E08000026.csv")
        .lines()
        .skip(1)
        .find(|l| l.split(',').nth(8) == Some("") && !l.contains("9990597634"))
        .map(|l| cpis_domain::NhsNumber::parse(l.split(',').nth(1).unwrap()).unwrap())
        .unwrap();
    let coventry_plans = |store: &dyn cpis_store::Store| {
        store
            .records_for(other)
            .unwrap()
            .into_iter()
            .find(|r| r.la == la)
            .unwrap()
            .plans
    };
    let held_plans = coventry_plans(app.store.as_ref());
    assert!(
        held_plans.iter().any(|p| p.end().is_none()),
        "the other child has an open plan"
    );
    let ended_before = app.store.counts().unwrap();

    let confirm = |token: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/uploads/{id}/confirm"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(confirm(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "completed");
    assert_eq!(j["file_outcome"], "CPF02");
    assert!(j["counts"]["plans_ended"].as_u64().unwrap() > 10);
    // Full uploads end plans, they never delete records.
    assert_eq!(app.store.counts().unwrap().records, ended_before.records);
    assert_eq!(app.store.la_record_count(&la).unwrap(), records);
    let after = coventry_plans(app.store.as_ref());
    assert_ne!(after, held_plans, "confirming applied the upload");
    let file_date = cpis_domain::parse_iso_date("2026-11-20").unwrap();
    assert!(after
        .iter()
        .all(|p| p.end().is_some_and(|e| e <= file_date.max(p.start()))));
    let r = app.send(confirm(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_confirms_apply_once_and_the_rest_answer_409() {
    let app = spawn_app();
    let body =
        format!("{HEADER}\nupsert,9990597634,COV-001010,A,B,2013-05-31,CPP,2025-09-07,,,false\n");
    let r = app
        .upload(
            "?mode=full&file_id=full-1&file_date=2026-11-20",
            COVENTRY_TOKEN,
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let confirm = || {
        app.send(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/api/v1/uploads/{id}/confirm"))
                .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let replies = futures_util::future::join_all((0..5).map(|_| confirm())).await;
    let mut statuses: Vec<_> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409, 409, 409, 409]);
    let ok = replies.iter().find(|r| r.status == StatusCode::OK).unwrap();
    let ended = ok.json()["counts"]["plans_ended"].as_u64().unwrap();
    assert!(ended > 10);
    let r = app
        .get(&format!("/api/v1/uploads/{id}"), Some(COVENTRY_TOKEN))
        .await;
    assert_eq!(r.json()["counts"]["plans_ended"].as_u64(), Some(ended));
    let confirms = app
        .store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("upload.confirm".into()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(confirms.len(), 1, "one confirm audit entry");
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app();
    let r = app.get("/api/v1/nothing-here", Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "not_found");
}
