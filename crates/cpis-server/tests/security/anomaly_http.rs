//! Lookup anomaly detection over HTTP (SPEC 4, docs/SECURITY.md): an identity looking children up
//! too fast, walking sequential NHS numbers or mostly missing is answered 429 (OperationOutcome
//! `throttled`) for the throttle time, an admin sees a `security.anomaly` alert, and nobody else is
//! affected.

use crate::common::*;
use axum::http::StatusCode;
use chrono::Duration;
use cpis_core::anomaly::AnomalyPolicy;
use cpis_domain::NhsNumber;
use serde_json::Value;

fn app_with(policy: AnomalyPolicy) -> TestApp {
    spawn_app_with_options(AppOptions {
        anomaly: Some(policy),
        ..AppOptions::default()
    })
}

/// No rule fires: tests tighten the one they exercise.
const LOOSE: AnomalyPolicy = AnomalyPolicy {
    max_per_minute: 100_000,
    max_distinct_children: 100_000,
    distinct_window_minutes: 10,
    sequential_run: 100_000,
    sequential_gap: 100,
    sequential_window: 30,
    miss_window: 100_000,
    max_miss_ratio: 0.8,
    org_max_lookups: 100_000,
    org_window_minutes: 60,
    throttle_minutes: 15,
};

async fn alerts(app: &TestApp) -> Vec<Value> {
    let r = app.get("/api/v1/admin/alerts", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["entries"].as_array().cloned().unwrap()
}

#[tokio::test]
async fn the_sixth_lookup_in_a_minute_is_throttled_and_reported_to_admins() {
    let app = app_with(AnomalyPolicy {
        max_per_minute: 5,
        ..LOOSE
    });
    let start = start_time();
    for i in 0..5 {
        app.clock.set(start + Duration::seconds(i * 5));
        let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
        assert_eq!(r.status, StatusCode::OK, "lookup {i}: {}", r.text());
    }
    assert!(alerts(&app).await.is_empty(), "no alert yet");
    let accesses = app.accesses_stored();

    app.clock.set(start + Duration::seconds(30));
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
    assert_outcome(&r, StatusCode::TOO_MANY_REQUESTS, "throttled", "6th lookup");
    assert_reveals_nothing(&r.body, "throttled");
    assert_eq!(
        app.accesses_stored(),
        accesses,
        "a refused lookup looks nobody up"
    );

    let found = alerts(&app).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = &found[0];
    assert_eq!(a["action"], "security.anomaly");
    assert_eq!(a["actor"]["id"], "ed.clinician");
    assert_eq!(a["actor"]["organisation"], ED_SETTING);
    assert_eq!(a["outcome"], "denied");
    assert!(a["detail"].as_str().unwrap().contains("rate"), "{a}");
    assert_eq!(a["subject_nhs"], Value::Null, "the alert names no child");

    // Still throttled, on the history search too, without a second alert.
    for (at, what) in [(60, "30 s after"), (15 * 60 + 29, "14:59 after")] {
        app.clock.set(start + Duration::seconds(at));
        let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
        assert_outcome(&r, StatusCode::TOO_MANY_REQUESTS, "throttled", what);
        let h = app.audit_events(SHARED_CHILD, ED_TOKEN).await;
        assert_outcome(&h, StatusCode::TOO_MANY_REQUESTS, "throttled", what);
    }
    assert_eq!(alerts(&app).await.len(), 1, "one alert per anomaly");

    // Other identities, at the same setting too, are not affected.
    app.clock.set(start + Duration::seconds(15 * 60 + 29));
    for token in [ED_OTHER_TOKEN, ED2_TOKEN, GP_TOKEN, ED_SILENT_TOKEN] {
        let r = app.care_team(SHARED_CHILD, token, Some("true")).await;
        assert_eq!(r.status, StatusCode::OK, "{token}: {}", r.text());
    }
    // Nor is the throttled identity's access to things that are not lookups.
    let me = app.get("/auth/session", Some(ED_TOKEN)).await;
    assert_eq!(me.status, StatusCode::OK);

    // After the throttle time (15 minutes from the 6th lookup) lookups work again.
    app.clock
        .set(start + Duration::seconds(30) + Duration::minutes(15));
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let h = app.audit_events(SHARED_CHILD, ED_TOKEN).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text());
}

#[tokio::test]
async fn only_admins_see_the_alerts() {
    let app = app_with(AnomalyPolicy {
        max_per_minute: 1,
        ..LOOSE
    });
    app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(alerts(&app).await.len(), 1);
    for token in [ED_TOKEN, COVENTRY_TOKEN, AUDITOR_TOKEN, GP_TOKEN] {
        let r = app.get("/api/v1/admin/alerts", Some(token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token}");
    }
    // The auditor finds the same alert in the audit trail.
    let e = app.last_audit("security.anomaly", None).await.unwrap();
    assert_eq!(e["actor"]["id"], "ed.clinician");
}

/// Ten lookups of consecutive valid NHS numbers look like enumeration: the identity is throttled
/// after the tenth.
#[tokio::test]
async fn sequential_nhs_numbers_are_throttled() {
    let app = app_with(AnomalyPolicy {
        sequential_run: 10,
        sequential_gap: 100,
        ..LOOSE
    });
    let numbers: Vec<NhsNumber> = (999_100_000u32..)
        .filter_map(NhsNumber::from_prefix)
        .take(11)
        .collect();
    assert!(numbers
        .windows(2)
        .all(|w| w[1].as_u64() - w[0].as_u64() <= 100));
    let start = start_time();
    for (i, n) in numbers.iter().take(10).enumerate() {
        app.clock.set(start + Duration::minutes(i as i64));
        let r = app.care_team(&n.digits(), ED_TOKEN, Some("true")).await;
        assert_eq!(r.status, StatusCode::OK, "lookup {i}: {}", r.text());
    }
    app.clock.set(start + Duration::minutes(10));
    let r = app
        .care_team(&numbers[10].digits(), ED_TOKEN, Some("true"))
        .await;
    assert_outcome(&r, StatusCode::TOO_MANY_REQUESTS, "throttled", "11th");
    let found = alerts(&app).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]["detail"].as_str().unwrap().contains("sequential"),
        "{}",
        found[0]
    );
    assert!(
        !found[0].to_string().contains(&numbers[9].digits()),
        "the alert names no NHS number"
    );
    // Someone else may still look children up.
    let r = app
        .care_team(&numbers[10].digits(), ED2_TOKEN, Some("true"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // After the throttle time the identity may look children up again.
    app.clock.set(start + Duration::minutes(30));
    let r = app
        .care_team(&numbers[10].digits(), ED_TOKEN, Some("true"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "throttle over");
}

#[tokio::test]
async fn mostly_misses_are_throttled() {
    let app = app_with(AnomalyPolicy {
        miss_window: 5,
        max_miss_ratio: 0.8,
        ..LOOSE
    });
    // Scattered numbers that nobody holds a record for.
    let misses: Vec<NhsNumber> = (0..5u32)
        .filter_map(|i| (100_000_000 + i * 97_000_003..).find_map(NhsNumber::from_prefix))
        .collect();
    for (i, n) in misses.iter().enumerate() {
        let r = app.care_team(&n.digits(), GP_TOKEN, Some("false")).await;
        assert_eq!(r.status, StatusCode::OK, "miss {i}");
        assert_eq!(r.json()["total"], 0, "miss {i}");
    }
    let r = app.care_team(SHARED_CHILD, GP_TOKEN, Some("false")).await;
    assert_outcome(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        "after 5 misses",
    );
    let found = alerts(&app).await;
    assert_eq!(found.len(), 1);
    assert!(found[0]["detail"]
        .as_str()
        .unwrap()
        .contains("found nothing"));
    assert_eq!(found[0]["actor"]["id"], "gp.clinician");
}

/// JWT identities are throttled per subject like any other identity.
#[tokio::test]
async fn throttling_follows_the_identity_whatever_the_credential() {
    let app = spawn_app_with_options(AppOptions {
        anomaly: Some(AnomalyPolicy {
            max_per_minute: 2,
            ..LOOSE
        }),
        jwt: Some(jwt_config()),
        ..AppOptions::default()
    });
    for _ in 0..2 {
        assert_eq!(
            app.care_team(SHARED_CHILD, ED_TOKEN, None).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.care_team(SHARED_CHILD, ED_TOKEN, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A fresh API token for the same user does not escape the throttle.
    let token = cpis_auth::users::issue_token(
        app.store.as_ref(),
        "ed.clinician",
        "second",
        None,
        start_time(),
    )
    .unwrap();
    assert_eq!(
        app.care_team(SHARED_CHILD, &token, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn every_throttled_lookup_is_audited() {
    let app = app_with(AnomalyPolicy {
        max_per_minute: 1,
        ..LOOSE
    });
    app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
    for _ in 0..3 {
        let r = app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }
    let denied: Vec<Value> = app
        .audit_entries("?user=ed.clinician&limit=100")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(
        denied.len() >= 3,
        "each of the 3 refused lookups is audited: {denied:#?}"
    );
}

/// Valid NHS numbers from `from` on.
fn walk(from: u32, count: usize) -> Vec<String> {
    (from..)
        .filter_map(NhsNumber::from_prefix)
        .take(count)
        .map(|n| n.digits())
        .collect()
}

/// Sends `lookups` (NHS number, use the history search) one second apart with the default
/// policy and returns the index of the first 429, checking it carries `Retry-After` and raised
/// exactly one alert whose detail contains `why`.
async fn first_refusal(lookups: &[(String, bool)], why: &str) -> usize {
    let app = app_with(AnomalyPolicy::default());
    let start = start_time();
    for (i, (nhs, history)) in lookups.iter().enumerate() {
        app.clock.set(start + Duration::seconds(i as i64));
        let r = if *history {
            app.audit_events(nhs, ED_TOKEN).await
        } else {
            app.care_team(nhs, ED_TOKEN, Some("true")).await
        };
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_outcome(&r, StatusCode::TOO_MANY_REQUESTS, "throttled", why);
            let retry: i64 = r
                .headers
                .get("retry-after")
                .expect("a 429 carries Retry-After")
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((14 * 60..=15 * 60).contains(&retry), "Retry-After {retry}");
            // Every later lookup in the episode is refused too, without a second alert.
            let again = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
            assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
            assert!(again.headers.get("retry-after").is_some());
            let found = alerts(&app).await;
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(
                found[0]["detail"].as_str().unwrap().contains(why),
                "{}",
                found[0]
            );
            return i;
        }
        assert_eq!(r.status, StatusCode::OK, "lookup {i}: {}", r.text());
    }
    panic!("{} lookups were never refused ({why})", lookups.len());
}

#[tokio::test]
async fn a_sequential_walk_interleaved_with_a_known_child_is_throttled() {
    let lookups: Vec<(String, bool)> = walk(999_100_000, 15)
        .into_iter()
        .flat_map(|n| [(n, false), (SHARED_CHILD.to_owned(), false)])
        .collect();
    let i = first_refusal(&lookups, "sequential").await;
    assert!(i <= 20, "refused only at lookup {i}");
}

#[tokio::test]
async fn random_numbers_with_a_known_child_every_fifth_lookup_are_throttled() {
    let lookups: Vec<(String, bool)> = (0..60u32)
        .map(|i| {
            if i % 5 == 4 {
                SHARED_CHILD.to_owned()
            } else {
                (100_000_000 + i * 9_700_003..)
                    .find_map(NhsNumber::from_prefix)
                    .unwrap()
                    .digits()
            }
        })
        .map(|n| (n, false))
        .collect();
    let i = first_refusal(&lookups, "children").await;
    assert!(i <= 41, "refused only at lookup {i}");
}

#[tokio::test]
async fn sequential_history_searches_are_throttled_like_lookups() {
    let lookups: Vec<(String, bool)> = walk(999_100_000, 15)
        .into_iter()
        .map(|n| (n, true))
        .collect();
    let i = first_refusal(&lookups, "sequential").await;
    assert_eq!(i, 10, "the 11th history search is refused");
}
