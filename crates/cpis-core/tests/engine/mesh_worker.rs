//! The MESH worker against NHS England's mesh-sandbox (a real MESH server): uploads taken from
//! cpis's mailbox and answered, notifications queued once and sent once, and the exactly-once
//! rule when a send's outcome is unknown (found by local id, not sent again) or MESH is down.
//! Runs on SQLite (and PostgreSQL with CPIS_TEST_BACKEND=postgres); needs CPIS_MESH_PYTHON.

use crate::common::*;
use chrono::Duration;
use cpis_auth::{OrgKind, Principal};
use cpis_core::delivery::RetryPolicy;
use cpis_core::mesh::{
    MeshSettings, MeshWorker, Received, WORKFLOW_ACCESS, WORKFLOW_INACTIVE_NHS_NUMBER,
    WORKFLOW_UPLOAD,
};
use cpis_core::{LookupRequest, LookupService, UploadEngine};
use cpis_domain::notification::NewNotification;
use cpis_domain::{Clock, NotificationKind, Permission, Permissions, SettingType};
use cpis_mesh::sandbox::{python_or_skip, Sandbox};
use cpis_mesh::{MeshClient, OutboundMessage};
use cpis_store::NewMeshMessage;
use std::sync::Arc;

const CPIS: &str = "CPIS0MB1";
const LA_A_MAILBOX: &str = "LA001OT";

struct Rig {
    env: Env,
    sandbox: Sandbox,
    worker: MeshWorker,
    /// Coventry's own MESH client.
    la: MeshClient,
}

fn rig(test: &str, people: &[cpis_domain::Demographics]) -> Option<Rig> {
    let python = python_or_skip(test)?;
    let sandbox = Sandbox::start(&python, &[CPIS, LA_A_MAILBOX, "LA002OT", "STRANGER"])
        .expect("start mesh-sandbox");
    let env = Env::with(people);
    let engine = Arc::new(UploadEngine::new(
        env.store.clone(),
        env.clock.clone(),
        Default::default(),
    ));
    let settings = MeshSettings {
        retry: RetryPolicy {
            first_retry_seconds: 5,
            lease_seconds: 60,
            ..RetryPolicy::default()
        },
        ..MeshSettings::default()
    };
    let worker = MeshWorker::new(
        MeshClient::new(sandbox.config(CPIS)).unwrap(),
        engine,
        env.clock.clone(),
        settings,
    );
    let la = MeshClient::new(sandbox.config(LA_A_MAILBOX)).unwrap();
    Some(Rig {
        env,
        sandbox,
        worker,
        la,
    })
}

/// Everything in `client`'s inbox: (workflow, local id, body), acknowledged.
fn take_all(client: &MeshClient) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for id in client.inbox().unwrap() {
        let m = client.download(&id).unwrap();
        client.acknowledge(&id).unwrap();
        out.push((
            m.workflow_id.unwrap_or_default(),
            m.local_id.unwrap_or_default(),
            m.body,
        ));
    }
    out
}

fn queued(local_id: &str, rig: &Rig) -> NewMeshMessage {
    NewMeshMessage {
        local_id: local_id.into(),
        recipient: LA_A_MAILBOX.into(),
        workflow_id: WORKFLOW_ACCESS.into(),
        subject: None,
        filename: None,
        content_type: "application/json".into(),
        body: br#"{"test":true}"#.to_vec(),
        created_at: rig.env.clock.now(),
    }
}

fn later(rig: &Rig, seconds: i64) {
    rig.env
        .clock
        .set(rig.env.clock.now() + Duration::seconds(seconds));
}

#[test]
fn a_send_whose_outcome_was_unknown_is_found_by_local_id_and_not_sent_again() {
    let Some(rig) = rig("mesh_worker::unknown_outcome", &[]) else {
        return;
    };
    let store = &rig.env.store;
    store
        .mesh_enqueue(
            &[queued("n-reached-mesh", &rig), queued("n-lost", &rig)],
            &[],
        )
        .unwrap();
    // A worker claims both, marks them started, sends the first, and dies before recording
    // either outcome.
    let now = rig.env.clock.now();
    let claimed = store
        .mesh_claim(now, now + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        store.mesh_send_started(c.id, now).unwrap();
    }
    let cpis = MeshClient::new(rig.sandbox.config(CPIS)).unwrap();
    let m = &claimed[0].message;
    assert_eq!(m.local_id, "n-reached-mesh");
    let first_id = cpis
        .send(&OutboundMessage {
            to: m.recipient.clone(),
            workflow_id: m.workflow_id.clone(),
            local_id: m.local_id.clone(),
            subject: None,
            filename: None,
            content_type: m.content_type.clone(),
            body: m.body.clone(),
        })
        .unwrap();

    // After the lease, the next worker looks each up before sending.
    later(&rig, 61);
    let pass = rig.worker.send_due().unwrap();
    assert_eq!((pass.found_sent, pass.sent, pass.failed), (1, 1, 0));
    let got = take_all(&rig.la);
    let mut ids: Vec<_> = got.iter().map(|(_, l, _)| l.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["n-lost", "n-reached-mesh"],
        "each message exactly once"
    );
    let outbox = store.mesh_outbox(10).unwrap();
    let reached = outbox
        .iter()
        .find(|e| e.local_id == "n-reached-mesh")
        .unwrap();
    assert_eq!(reached.message_id.as_deref(), Some(first_id.as_str()));
    assert!(outbox.iter().all(|e| e.sent_at.is_some()));
    later(&rig, 3600);
    assert_eq!(rig.worker.send_due().unwrap(), Default::default());
}

#[test]
fn while_mesh_is_down_messages_wait_and_go_once_it_is_back() {
    let Some(mut rig) = rig("mesh_worker::outage", &[]) else {
        return;
    };
    rig.env
        .store
        .mesh_enqueue(&[queued("n-outage", &rig)], &[])
        .unwrap();
    rig.sandbox.stop();
    let pass = rig.worker.send_due().unwrap();
    assert_eq!((pass.sent, pass.failed), (0, 1));
    let entry = &rig.env.store.mesh_outbox(1).unwrap()[0];
    assert_eq!(
        (entry.attempts, entry.sent_at, entry.dead_at),
        (1, None, None)
    );
    assert!(entry.last_error.is_some());
    assert!(
        rig.worker.receive().is_err(),
        "the inbox cannot be read either"
    );

    rig.sandbox.start_again().unwrap();
    assert_eq!(
        rig.worker.send_due().unwrap(),
        Default::default(),
        "not before its retry time"
    );
    later(&rig, 10);
    let pass = rig.worker.send_due().unwrap();
    assert_eq!((pass.sent, pass.found_sent), (1, 0));
    let got = take_all(&rig.la);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "n-outage");
}

#[test]
fn notifications_are_queued_once_skipping_acknowledged_ones() {
    let child = nhs(1);
    let Some(rig) = rig("mesh_worker::notifications", &[active(child, "2015-01-01")]) else {
        return;
    };
    rig.env.delta(
        LA_A,
        "a",
        &[Line::upsert(child, "2015-01-01", "CPP", "2026-01-01")],
    );
    let ed = Principal::local_operator(
        "ed",
        la("RXEDTEST"),
        "ED",
        OrgKind::CareSetting(SettingType::EmergencyDepartment),
        Permissions::new([Permission::ViewNotify]),
    );
    let lookups = LookupService::start(
        rig.env.store.clone(),
        rig.env.clock.clone(),
        Default::default(),
    );
    for _ in 0..3 {
        let r = lookups
            .lookup(LookupRequest::new(&ed.lookup().unwrap(), child, true, None))
            .unwrap();
        assert_eq!(r.notified, [la(LA_A)]);
    }
    let ids: Vec<String> = rig
        .env
        .store
        .notifications(&la(LA_A), 0, 100)
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids.len(), 3);
    // The LA has already seen the first through the API: MESH does not send it again.
    rig.env
        .store
        .acknowledge(&la(LA_A), &ids[0], "la-user", rig.env.clock.now())
        .unwrap();
    // An inactive-NHS-number notification travels too; upload-report notifications do not
    // (reports answer the upload message itself).
    let mut tx = rig.env.store.begin_changes().unwrap();
    for (id, kind) in [
        ("inactive-1", NotificationKind::InactiveNhsNumber),
        ("report-1", NotificationKind::UploadReport),
    ] {
        tx.insert_notification(&NewNotification {
            id: id.into(),
            la: la(LA_A),
            kind,
            created_at: rig.env.clock.now(),
            payload: format!(r#"{{"id":"{id}","kind":"{}"}}"#, kind.code()),
        })
        .unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(rig.worker.queue_notifications().unwrap(), 3);
    assert_eq!(rig.worker.queue_notifications().unwrap(), 0);
    let pass = rig.worker.send_due().unwrap();
    assert_eq!(pass.sent, 3);
    let got = take_all(&rig.la);
    let mut local: Vec<_> = got.iter().map(|(_, l, _)| l.clone()).collect();
    local.sort_unstable();
    let mut want: Vec<_> = ids[1..]
        .iter()
        .map(String::as_str)
        .chain(["inactive-1"])
        .map(|id| format!("cpis-notification-{id}"))
        .collect();
    want.sort_unstable();
    assert_eq!(local, want);
    let (inactive, access): (Vec<_>, Vec<_>) = got
        .iter()
        .partition(|(_, l, _)| l == "cpis-notification-inactive-1");
    assert_eq!(inactive[0].0, WORKFLOW_INACTIVE_NHS_NUMBER);
    let mut seen = Vec::new();
    for (workflow, _, body) in access {
        assert_eq!(workflow, WORKFLOW_ACCESS);
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["kind"], "access");
        assert_eq!(v["la"], LA_A);
        // Contacts (null for an operator) and attendance travel over MESH as on every channel.
        assert!(v["access"]["organisation"].get("phone").is_some(), "{v}");
        assert!(v["access"].get("contact").is_some(), "{v}");
        seen.push((
            v["attendance"]["seen_6_months"].as_u64().unwrap(),
            v.get("pattern").cloned(),
        ));
    }
    seen.sort_by_key(|(n, _)| *n);
    assert_eq!(
        seen,
        [
            (2, None),
            (3, Some(serde_json::json!("frequent-attendance")))
        ],
        "the second and third lookups; the third is frequent attendance"
    );
}

#[test]
fn an_upload_is_applied_reported_and_only_then_acknowledged() {
    let child = nhs(2);
    let Some(rig) = rig("mesh_worker::upload", &[active(child, "2015-01-01")]) else {
        return;
    };
    let body = file(&[
        Line::upsert(child, "2015-01-01", "CPP", "2026-01-01"),
        Line::upsert(child, "2015-01-01", "CPP", "2026-01-01").nhs_text("1234567890"),
    ]);
    let sent = rig
        .la
        .send(&OutboundMessage {
            to: CPIS.into(),
            workflow_id: WORKFLOW_UPLOAD.into(),
            local_id: "LA-FILE-7".into(),
            subject: Some("mode=delta; file_date=2026-10-31".into()),
            filename: Some("upload.csv".into()),
            content_type: "text/csv".into(),
            body: body.clone(),
        })
        .unwrap();
    let received = rig.worker.receive().unwrap();
    assert_eq!(
        received,
        [Received::Upload {
            la: LA_A.into(),
            file_outcome: "CPF03".into()
        }]
    );
    assert!(
        rig.env.record(child, LA_A).is_some(),
        "the upload is applied"
    );
    let cpis = MeshClient::new(rig.sandbox.config(CPIS)).unwrap();
    assert!(cpis.inbox().unwrap().is_empty(), "and acknowledged");
    // The report is queued under a local id made from the message: taking the same message
    // again would queue nothing new.
    let outbox = rig.env.store.mesh_outbox(10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].local_id, format!("cpis-report-{sent}"));
    assert_eq!(rig.worker.send_due().unwrap().sent, 1);
    let got = take_all(&rig.la);
    assert_eq!(got.len(), 1);
    let report: serde_json::Value = serde_json::from_slice(&got[0].2).unwrap();
    assert_eq!(report["file_id"], "LA-FILE-7");
    assert_eq!(report["channel"], "mesh");
    assert_eq!(report["file_date"], "2026-10-31");
    assert_eq!(report["counts"]["accepted"], 1);
    assert_eq!(report["counts"]["rejected"], 1);
    let csv = report["records_csv"].as_str().unwrap();
    assert_eq!(csv.lines().count(), 3, "header and two rows: {csv}");
    assert!(csv.lines().nth(2).unwrap().contains("CPR04"), "{csv}");
}

#[test]
fn a_sender_outside_the_directory_is_refused_and_nothing_is_applied() {
    let Some(rig) = rig("mesh_worker::stranger", &[]) else {
        return;
    };
    let stranger = MeshClient::new(rig.sandbox.config("STRANGER")).unwrap();
    stranger
        .send(&OutboundMessage {
            to: CPIS.into(),
            workflow_id: WORKFLOW_UPLOAD.into(),
            local_id: "x".into(),
            subject: None,
            filename: None,
            content_type: "text/csv".into(),
            body: file(&[]),
        })
        .unwrap();
    let received = rig.worker.receive().unwrap();
    assert!(
        matches!(&received[..], [Received::Refused { reason }] if reason.contains("not registered")),
        "{received:?}"
    );
    assert_eq!(rig.env.counts().uploads, 0);
    rig.worker.send_due().unwrap();
    let got = take_all(&stranger);
    assert_eq!(got.len(), 1);
    let report: serde_json::Value = serde_json::from_slice(&got[0].2).unwrap();
    assert_eq!(report["file_outcome"], "CPF01");
}

/// A file sent again (the same bytes under another local id, as a replayed MESH message is) is a
/// duplicate: nothing is applied again, and its CPIS_UPLOAD_REPORT says so in words and fields,
/// naming the first upload (its id, file id, time and outcome).
#[test]
fn a_replayed_files_report_says_it_is_a_duplicate_and_names_the_first_upload() {
    let child = nhs(3);
    let Some(rig) = rig("mesh_worker::replay", &[active(child, "2015-01-01")]) else {
        return;
    };
    let body = file(&[Line::upsert(child, "2015-01-01", "CPP", "2026-01-01")]);
    let send = |local_id: &str| {
        rig.la
            .send(&OutboundMessage {
                to: CPIS.into(),
                workflow_id: WORKFLOW_UPLOAD.into(),
                local_id: local_id.into(),
                subject: Some("mode=delta; file_date=2026-10-31".into()),
                filename: Some("upload.csv".into()),
                content_type: "text/csv".into(),
                body: body.clone(),
            })
            .unwrap()
    };
    let report = |rig: &Rig| -> serde_json::Value {
        assert_eq!(rig.worker.send_due().unwrap().sent, 1);
        let got = take_all(&rig.la);
        assert_eq!(got.len(), 1);
        serde_json::from_slice(&got[0].2).unwrap()
    };
    send("LA-FILE-8");
    assert_eq!(rig.worker.receive().unwrap().len(), 1);
    let first = report(&rig);
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["file_outcome"], "CPF02");

    send("LA-FILE-8-AGAIN");
    assert_eq!(rig.worker.receive().unwrap().len(), 1);
    let again = report(&rig);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["duplicate_of"], first["id"]);
    assert_eq!(again["first_upload"]["id"], first["id"]);
    assert_eq!(again["first_upload"]["file_id"], "LA-FILE-8");
    assert_eq!(again["first_upload"]["file_outcome"], "CPF02");
    assert_eq!(again["first_upload"]["received_at"], first["received_at"]);
    let text = again["description"].as_str().unwrap();
    assert!(
        text.starts_with("Duplicate: this file was already received as file id 'LA-FILE-8'")
            && text.contains(first["id"].as_str().unwrap())
            && text.contains("nothing was applied"),
        "{text}"
    );
    assert_eq!(again["counts"]["rows"], 0, "nothing was processed again");
}
