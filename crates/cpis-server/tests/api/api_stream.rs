//! The LA's live notification stream (server-sent events).

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn next_event(body: &mut Body) -> String {
    let mut text = String::new();
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("an event within 5 s")
            .expect("stream open")
            .expect("frame");
        if let Some(data) = frame.data_ref() {
            text.push_str(std::str::from_utf8(data).unwrap());
            if text.contains("\n\n") && text.contains("data:") {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_lookup_appears_on_the_las_stream_and_nowhere_else() {
    let app = spawn_app();
    let open = |token: &str, last: Option<&str>| {
        let mut b = Request::get("/api/v1/notifications/stream")
            .header("authorization", format!("Bearer {token}"));
        if let Some(l) = last {
            b = b.header("last-event-id", l);
        }
        b.body(Body::empty()).unwrap()
    };
    let resp = app
        .router
        .clone()
        .oneshot(open(COVENTRY_TOKEN, None))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = resp.into_body();

    let uri = "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9990597634";
    assert_eq!(app.get(uri, Some(ED_TOKEN)).await.status, StatusCode::OK);
    let event = next_event(&mut body).await;
    assert!(event.contains("event: access"), "{event}");
    assert!(event.contains("id: 1"), "{event}");
    assert!(event.contains("9990597634"), "{event}");
    assert!(event.contains("\"la\":\"E08000026\""), "{event}");

    // Resuming after event 1 skips it; the second lookup's notification comes next.
    assert_eq!(app.get(uri, Some(ED_TOKEN)).await.status, StatusCode::OK);
    let resp = app
        .router
        .clone()
        .oneshot(open(COVENTRY_TOKEN, Some("1")))
        .await
        .unwrap();
    let mut resumed = resp.into_body();
    let event = next_event(&mut resumed).await;
    assert!(
        event.contains("id: 2") && !event.contains("id: 1\n"),
        "{event}"
    );

    // Health identities and unauthenticated callers get no stream.
    let r = app
        .router
        .clone()
        .oneshot(open(ED_TOKEN, None))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .router
        .clone()
        .oneshot(
            Request::get("/api/v1/notifications/stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
