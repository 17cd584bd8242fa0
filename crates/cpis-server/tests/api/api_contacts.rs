//! Each other's contact details and attendance across settings in the access notification
//! (docs/WORKFLOW.md): the care setting's contact number from the directory, the clinician's
//! work contact from their identity provider's claims, the attendance counts and the
//! `frequent-attendance` pattern, alike on the API and in the webhook body.

use crate::common::*;
use axum::http::StatusCode;
use cpis_core::delivery::{DeliveryWorker, RetryPolicy, SendResult, Sender};
use cpis_domain::{AuditActor, AuditEntry, Clock, OdsCode};
use cpis_store::Webhook;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A token from the test identity provider for an ED clinician (RDEMO01) with a work contact.
fn token_with_contact() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": "dr.contact",
        "name": "Dr Connie Tact",
        "role": "Clinician",
        "iat": t,
        "nbf": t - 5,
        "exp": t + 600,
        "ods": ED_SETTING,
        "cpis_permissions": ["cpis:view-notify"],
        "phone_number": "07700 900123",
        "email": "connie.tact@nhs.example",
    });
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(JWT_RSA_KID.into());
    let key = EncodingKey::from_rsa_pem(fixture("jwt/rsa-private.pem").as_bytes()).unwrap();
    encode(&h, &claims, &key).unwrap()
}

/// The demo directory's contact number of a care setting (demo/care_settings.csv).
fn setting_phone(ods: &str) -> String {
    let mut rd = csv::Reader::from_reader(cpis_core::demo::CARE_SETTINGS.as_bytes());
    rd.records()
        .map(|r| r.unwrap())
        .find(|r| &r[0] == ods)
        .map(|r| r[3].to_owned())
        .unwrap()
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Vec<u8>>>>);

impl Sender for Capture {
    fn post(&self, _url: &str, _headers: &[(&str, String)], body: &[u8]) -> SendResult {
        self.0.lock().unwrap().push(body.to_vec());
        Ok(200)
    }
}

#[tokio::test]
async fn access_notifications_carry_contacts_attendance_and_the_pattern() {
    let app = spawn_app_with_jwt();
    let now = app.clock.now();
    app.store
        .add_webhook(
            &Webhook {
                id: "hook-1".into(),
                la: OdsCode::parse(COVENTRY).unwrap(),
                url: "https://la.example/cpis".into(),
                secret: "test-signing-secret".into(),
                created_at: now,
            },
            &AuditEntry::new(now, AuditActor::anonymous(), "admin.webhook.add", None),
        )
        .unwrap();

    // A clinician whose identity provider gives a work contact, at a setting with a number.
    let r = app
        .care_team(SHARED_CHILD, &token_with_contact(), Some("true"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let first = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    assert_eq!(first.len(), 1);
    let n = &first[0];
    assert_eq!(n["access"]["organisation"]["ods_code"], ED_SETTING);
    assert_eq!(
        n["access"]["organisation"]["phone"],
        setting_phone(ED_SETTING)
    );
    assert_eq!(
        n["access"]["contact"],
        json!({ "phone": "07700 900123", "email": "connie.tact@nhs.example" })
    );
    assert_eq!(
        n["attendance"],
        json!({ "seen_6_months": 1, "seen_30_days": 1, "organisations_30_days": 1 })
    );
    assert!(n.get("pattern").is_none(), "{n}");

    // An hour later another ED (an API token: no contact) sees the child: two settings in 30
    // days is frequent attendance.
    app.clock.set(now + chrono::Duration::hours(1));
    app.notifying_lookup(SHARED_CHILD, ED2_TOKEN).await;
    let all = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    assert_eq!(all.len(), 2);
    let n = &all[1];
    assert_eq!(
        n["access"]["organisation"]["phone"],
        setting_phone(ED2_SETTING)
    );
    assert_eq!(n["access"]["contact"], Value::Null);
    assert_eq!(n["pattern"], "frequent-attendance");
    assert_eq!(
        n["attendance"],
        json!({ "seen_6_months": 2, "seen_30_days": 2, "organisations_30_days": 2 })
    );

    // The webhook bodies are the same notifications.
    let capture = Capture::default();
    let store = app.store.clone();
    let clock = app.clock.clone();
    let sender = capture.clone();
    let sent = cpis_testkit::off_runtime(move || {
        DeliveryWorker::new(store, clock, RetryPolicy::default(), Box::new(sender))
            .run_once()
            .unwrap()
    });
    assert_eq!(sent, 2);
    let bodies: Vec<Value> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    let webhook_second = bodies
        .iter()
        .find(|b| b["id"] == all[1]["id"])
        .expect("the second notification was delivered");
    assert_eq!(webhook_second["pattern"], "frequent-attendance");
    assert_eq!(webhook_second["attendance"], all[1]["attendance"]);
    let webhook_first = bodies.iter().find(|b| b["id"] == all[0]["id"]).unwrap();
    assert_eq!(
        webhook_first["access"]["contact"],
        all[0]["access"]["contact"]
    );
    assert_eq!(
        webhook_first["access"]["organisation"]["phone"],
        setting_phone(ED_SETTING)
    );
}
