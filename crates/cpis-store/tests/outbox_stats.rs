//! `Store::outbox_stats` (the `/metrics` outbox gauges) on both backends: what waits in the MESH
//! outbox and since when, what was given up on; webhook deliveries alike (SQLite, rows written
//! directly). PostgreSQL runs when `CPIS_TEST_PG_URL` is set (`CPIS_REQUIRE_PG=1` fails
//! without it).

use chrono::{DateTime, Duration, TimeZone, Utc};
use cpis_store::{NewMeshMessage, OutboxStats, Store};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().unwrap()
}

fn message(local_id: &str, created_at: DateTime<Utc>) -> NewMeshMessage {
    NewMeshMessage {
        local_id: local_id.into(),
        recipient: "X26OT001".into(),
        workflow_id: "CPIS_ACCESS_NOTIFICATION".into(),
        subject: None,
        filename: None,
        content_type: "application/json".into(),
        body: b"{}".to_vec(),
        created_at,
    }
}

fn channel<'a>(stats: &'a [OutboxStats], name: &str) -> &'a OutboxStats {
    stats
        .iter()
        .find(|s| s.channel == name)
        .unwrap_or_else(|| panic!("no {name} channel in {stats:?}"))
}

/// Three MESH messages queued a minute apart; the oldest sent, the next dead-lettered: one
/// pending (the newest), one dead.
fn mesh_outbox_is_counted(store: &dyn Store) {
    let empty = store.outbox_stats().unwrap();
    for name in ["webhook", "mesh"] {
        let c = channel(&empty, name);
        assert_eq!(
            (c.pending, c.oldest_pending, c.dead),
            (0, None, 0),
            "{name}"
        );
    }
    let msgs: Vec<_> = (0..3)
        .map(|i| message(&format!("cpis-test-{i}"), t0() + Duration::minutes(i)))
        .collect();
    assert_eq!(store.mesh_enqueue(&msgs, &[]).unwrap(), 3);
    let stats = store.outbox_stats().unwrap();
    let mesh = channel(&stats, "mesh");
    assert_eq!(
        (mesh.pending, mesh.oldest_pending, mesh.dead),
        (3, Some(t0()), 0)
    );

    let now = t0() + Duration::hours(1);
    let claimed = store
        .mesh_claim(now, now + Duration::minutes(5), 10)
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let id = |local: &str| {
        claimed
            .iter()
            .find(|m| m.message.local_id == local)
            .unwrap()
            .id
    };
    store.mesh_sent(id("cpis-test-0"), "MSG-0", now).unwrap();
    store
        .mesh_send_failed(id("cpis-test-1"), "refused", None, now)
        .unwrap();
    let stats = store.outbox_stats().unwrap();
    let mesh = channel(&stats, "mesh");
    assert_eq!(
        (mesh.pending, mesh.oldest_pending, mesh.dead),
        (1, Some(t0() + Duration::minutes(2)), 1)
    );
}

#[test]
fn sqlite_outboxes_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let store = cpis_store::open(&format!("sqlite://{}", path.display())).unwrap();
    mesh_outbox_is_counted(store.as_ref());

    // Webhook deliveries: pending, delivered, dead, and pending for a disabled webhook.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO webhooks (id, la_ods, url, secret, created_at, disabled_at) VALUES
           ('w1', 'E08000026', 'https://la.example/hook', 's', '2026-11-01T00:00:00.000000Z', NULL),
           ('w2', 'E08000026', 'https://la.example/old', 's', '2026-11-01T00:00:00.000000Z', '2026-11-01T01:00:00.000000Z');
         INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at, delivered_at, dead_at) VALUES
           ('n1', 'w1', '2026-11-01T09:00:00.000000Z', '2026-11-01T09:00:00.000000Z', '2026-11-01T09:00:01.000000Z', NULL),
           ('n2', 'w1', '2026-11-01T09:05:00.000000Z', '2026-11-01T09:05:00.000000Z', NULL, NULL),
           ('n3', 'w1', '2026-11-01T09:10:00.000000Z', '2026-11-01T09:10:00.000000Z', NULL, NULL),
           ('n4', 'w1', '2026-11-01T08:00:00.000000Z', '2026-11-01T08:00:00.000000Z', NULL, '2026-11-01T09:00:00.000000Z'),
           ('n5', 'w2', '2026-11-01T07:00:00.000000Z', '2026-11-01T07:00:00.000000Z', NULL, NULL);",
    )
    .unwrap();
    let stats = store.outbox_stats().unwrap();
    let webhook = channel(&stats, "webhook");
    assert_eq!(
        (webhook.pending, webhook.oldest_pending, webhook.dead),
        (2, Some(t0() + Duration::minutes(5)), 1)
    );
}

#[test]
fn postgres_outboxes_are_counted() {
    let Some(admin) = std::env::var("CPIS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        assert!(
            !std::env::var("CPIS_REQUIRE_PG").is_ok_and(|v| v == "1"),
            "CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set"
        );
        println!("skipped: set CPIS_TEST_PG_URL to run the PostgreSQL outbox statistics test");
        return;
    };
    let db = cpis_store::postgres::TempDatabase::create(&admin).unwrap();
    let store = cpis_store::open(db.url()).unwrap();
    mesh_outbox_is_counted(store.as_ref());
}
