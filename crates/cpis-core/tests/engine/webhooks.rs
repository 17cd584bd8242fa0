//! Webhook delivery against a real HTTP receiver on loopback: signed, at least once with stable
//! ids, retried with backoff, dead-lettered after the retry period, never sent twice once
//! delivered. Runs on SQLite (and PostgreSQL with CPIS_TEST_BACKEND=postgres).

use crate::common::*;
use chrono::Duration;
use cpis_auth::{OrgKind, Principal};
use cpis_core::delivery::{verify, DeliveryWorker, DestinationPolicy, HttpSender, RetryPolicy};
use cpis_core::{LookupRequest, LookupService};
use cpis_domain::{AuditActor, AuditEntry, Clock, Permission, Permissions, SettingType};
use cpis_store::Webhook;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String, String)>>>);

/// A minimal HTTP/1.1 receiver: records (signature, notification id, body) and answers with the
/// next scripted status (200 once the script runs out).
fn receiver(script: Vec<u16>) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cpis-hook", listener.local_addr().unwrap());
    let got = Received::default();
    let store = got.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                headers.push(line.trim_end().to_owned());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| {
                        h.split_once(": ")
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let status = script.next().unwrap_or(200);
            store.0.lock().unwrap().push((
                header("cpis-signature"),
                header("cpis-notification-id"),
                String::from_utf8(body).unwrap(),
            ));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

fn setup(script: Vec<u16>, policy: RetryPolicy) -> (Env, DeliveryWorker, Received, String) {
    // The receiver is a plain-HTTP listener on 127.0.0.1: the loopback opt-in tests use.
    let loopback = DestinationPolicy {
        allow_http_loopback: true,
        ..Default::default()
    };
    setup_with(script, policy, |url| url, loopback)
}

fn setup_with(
    script: Vec<u16>,
    policy: RetryPolicy,
    url_of: impl Fn(String) -> String,
    destinations: DestinationPolicy,
) -> (Env, DeliveryWorker, Received, String) {
    let child = nhs(1);
    let env = Env::with(&[active(child, "2015-01-01")]);
    env.delta(
        LA_A,
        "a",
        &[Line::upsert(child, "2015-01-01", "CPP", "2026-01-01")],
    );
    let (url, got) = receiver(script);
    let url = url_of(url);
    let secret = "test-signing-secret".to_owned();
    env.store
        .add_webhook(
            &Webhook {
                id: "hook-1".into(),
                la: la(LA_A),
                url,
                secret: secret.clone(),
                created_at: env.clock.now(),
            },
            &AuditEntry::new(
                env.clock.now(),
                AuditActor::anonymous(),
                "admin.webhook.add",
                None,
            ),
        )
        .unwrap();
    // A notifying lookup by an emergency department: one notification for LA A.
    let ed = Principal::local_operator(
        "ed",
        la("RXEDTEST"),
        "ED",
        OrgKind::CareSetting(SettingType::EmergencyDepartment),
        Permissions::new([Permission::ViewNotify]),
    );
    let lookups = LookupService::start(env.store.clone(), env.clock.clone(), Default::default());
    let r = lookups
        .lookup(LookupRequest::new(&ed.lookup().unwrap(), child, true, None))
        .unwrap();
    assert_eq!(r.notified.len(), 1);
    // Its delivery in the tables, as the lookup service's log thread leaves it within moments
    // and then wakes the worker (SQLite's lookup log; nothing to copy on PostgreSQL).
    env.store.drain_lookup_spool().unwrap();
    let worker = DeliveryWorker::new(
        env.store.clone(),
        env.clock.clone(),
        policy,
        Box::new(HttpSender::new(destinations)),
    );
    (env, worker, got, secret)
}

#[test]
fn a_notification_is_delivered_signed_once() {
    let (env, worker, got, secret) = setup(vec![], RetryPolicy::default());
    assert_eq!(worker.run_once().unwrap(), 1);
    assert_eq!(worker.run_once().unwrap(), 0, "delivered: never sent again");
    let got = got.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (sig, id, body) = &got[0];
    verify(
        &secret,
        sig,
        body.as_bytes(),
        env.clock.now(),
        Duration::minutes(5),
    )
    .unwrap();
    assert!(verify(
        "wrong-secret",
        sig,
        body.as_bytes(),
        env.clock.now(),
        Duration::minutes(5)
    )
    .is_err());
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(&json["id"], id);
    assert_eq!(json["kind"], "access");
    assert_eq!(json["child"]["nhs_number"], nhs(1).digits());
    assert!(env.store.dead_deliveries(10).unwrap().is_empty());
}

#[test]
fn failures_are_retried_with_backoff_then_delivered_with_the_same_id() {
    let (env, worker, got, _) = setup(vec![500, 503], RetryPolicy::default());
    assert_eq!(worker.run_once().unwrap(), 1); // 500
    assert_eq!(
        worker.run_once().unwrap(),
        0,
        "not due again before the backoff"
    );
    env.clock.set(env.clock.now() + Duration::seconds(7));
    assert_eq!(worker.run_once().unwrap(), 1); // 503
    env.clock.set(env.clock.now() + Duration::seconds(7));
    assert_eq!(worker.run_once().unwrap(), 0, "second backoff is ~10 s");
    env.clock.set(env.clock.now() + Duration::seconds(6));
    assert_eq!(worker.run_once().unwrap(), 1); // 200
    env.clock.set(env.clock.now() + Duration::hours(1));
    assert_eq!(worker.run_once().unwrap(), 0);
    let got = got.0.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|(_, id, _)| *id == got[0].1),
        "every attempt carries the same id"
    );
}

#[test]
fn a_receiver_that_never_answers_is_dead_lettered_after_the_retry_period() {
    let policy = RetryPolicy {
        first_retry_seconds: 60,
        max_backoff_seconds: 600,
        give_up_after_hours: 1,
        ..Default::default()
    };
    let (env, worker, got, _) = setup(vec![500; 100], policy);
    let mut attempts = 0;
    for _ in 0..40 {
        attempts += worker.run_once().unwrap();
        env.clock.set(env.clock.now() + Duration::minutes(11));
    }
    let dead = env.store.dead_deliveries(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_status, Some(500));
    assert_eq!(dead[0].attempts as usize, attempts);
    assert!(
        (5..12).contains(&attempts),
        "{attempts} attempts in the hour"
    );
    assert_eq!(got.0.lock().unwrap().len(), attempts);
    assert_eq!(
        worker.run_once().unwrap(),
        0,
        "dead letters are not retried"
    );
}

#[test]
fn a_destination_that_resolves_to_an_internal_address_gets_nothing() {
    // "https://localhost:PORT" passes the form check, but at delivery the name resolves to
    // loopback, which this (production) policy refuses: what DNS rebinding would exploit.
    let policy = RetryPolicy {
        give_up_after_hours: 0,
        ..Default::default()
    };
    let (env, worker, got, _) = setup_with(
        vec![],
        policy,
        |url| url.replace("http://127.0.0.1", "https://localhost"),
        DestinationPolicy::default(),
    );
    assert_eq!(worker.run_once().unwrap(), 1);
    assert!(got.0.lock().unwrap().is_empty(), "the receiver was reached");
    let dead = env.store.dead_deliveries(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_status, None);
    let error = dead[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");

    // Plain HTTP without the loopback opt-in is refused before any connection.
    let (_env, worker, got, _) = setup_with(
        vec![],
        RetryPolicy::default(),
        |url| url,
        DestinationPolicy::default(),
    );
    assert_eq!(worker.run_once().unwrap(), 1);
    assert!(got.0.lock().unwrap().is_empty());
}

/// The harness's end-of-test check: a delivery a worker claimed and never settled fails the
/// test when its store is dropped, until the lease has run out.
#[test]
fn a_claim_left_unsettled_fails_the_test_when_the_env_is_dropped() {
    let (env, _worker, _got, _secret) = setup(vec![], RetryPolicy::default());
    let now = env.clock.now();
    let claimed = env
        .store
        .claim_deliveries(now, now + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let message = crate::harness::drop_message(env).expect("dropping the env panics");
    assert!(
        message.contains("outbox lease still held: webhook delivery"),
        "{message}"
    );

    // A lease that has run out is no longer held: the next worker may claim the row.
    let (env, _worker, _got, _secret) = setup(vec![], RetryPolicy::default());
    let now = env.clock.now();
    env.store
        .claim_deliveries(now, now + Duration::seconds(60), 10)
        .unwrap();
    env.clock.set(now + Duration::seconds(61));
    assert_eq!(crate::harness::drop_message(env), None);
}
