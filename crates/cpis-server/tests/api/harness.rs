//! The harness's end-of-test checks fire: a test that leaves the audit chain broken, or an
//! outbox row leased, fails when its [`TestApp`] is dropped (on either backend).

use crate::common::*;
use cpis_domain::{AuditActor, AuditEntry, Clock, OdsCode};
use cpis_store::Webhook;

/// Drops the app: the panic message, if dropping it panicked.
fn drop_message(app: TestApp) -> Option<String> {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(app)));
    dropped.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// An app whose notifying lookup queued one delivery for a Coventry webhook, claimed (leased
/// for a minute) as a delivery worker would, and not yet settled.
async fn app_with_a_claimed_delivery() -> (TestApp, Vec<cpis_store::DueDelivery>) {
    let app = spawn_app();
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
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    // Its delivery in the tables, as the lookup service's log thread leaves it moments later
    // (SQLite's lookup log).
    app.store.drain_lookup_spool().unwrap();
    let claimed = app
        .store
        .claim_deliveries(now, now + chrono::Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    (app, claimed)
}

#[tokio::test]
async fn an_untouched_app_passes_the_end_of_test_checks() {
    let app = spawn_app();
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    assert_eq!(drop_message(app), None);
}

#[tokio::test]
async fn an_edited_audit_entry_fails_the_test_when_the_app_is_dropped() {
    let app = spawn_app();
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    match app.store.audit_verify().unwrap() {
        cpis_store::AuditVerification::Intact { entries, .. } => assert!(entries > 2, "{entries}"),
        broken => panic!("intact before the edit: {broken:?}"),
    }
    cpis_testkit::tamper_with_audit_log(
        app.db_url(),
        "UPDATE audit_log SET detail = 'edited' WHERE seq = 2",
    )
    .unwrap();
    let message = drop_message(app).expect("dropping the app panics");
    assert!(
        message.contains("audit chain broken at entry 2"),
        "{message}"
    );
}

#[tokio::test]
async fn a_delivery_left_leased_fails_the_test_when_the_app_is_dropped() {
    // A notifying lookup queues a delivery for Coventry's webhook; a worker claims it and
    // stops without settling it.
    let (app, _) = app_with_a_claimed_delivery().await;
    let message = drop_message(app).expect("dropping the app panics");
    assert!(
        message.contains("outbox lease still held: webhook delivery"),
        "{message}"
    );
}

#[tokio::test]
async fn a_settled_delivery_passes_the_end_of_test_checks() {
    let (app, claimed) = app_with_a_claimed_delivery().await;
    let now = app.clock.now();
    app.store
        .delivery_failed(
            claimed[0].id,
            Some(503),
            "HTTP 503",
            Some(now + chrono::Duration::seconds(5)),
            now,
        )
        .unwrap();
    assert_eq!(drop_message(app), None);
}
