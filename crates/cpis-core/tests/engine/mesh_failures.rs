//! The MESH worker reports each failed MESH call (`MeshWorker::on_failure`, counted in
//! `/metrics` as `cpis_mesh_failures_total`): a MESH server that does not answer fails the
//! handshake, the inbox read and each send. No sandbox needed: nothing listens on the port.

use crate::common::*;
use cpis_core::mesh::{MeshFailure, MeshSettings, MeshWorker};
use cpis_core::UploadEngine;
use cpis_domain::Clock;
use cpis_mesh::{MeshClient, MeshConfig, Retry};
use cpis_store::NewMeshMessage;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn failed_mesh_calls_are_reported_by_operation() {
    let env = Env::with(&[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: connections to the port are refused.
    let mut config = MeshConfig::new(
        format!("http://127.0.0.1:{port}"),
        "CPIS0MB1",
        "password",
        "shared-key",
    );
    config.timeout = Duration::from_secs(2);
    config.retry = Retry {
        attempts: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    };
    let engine = Arc::new(UploadEngine::new(
        env.store.clone(),
        env.clock.clone(),
        Default::default(),
    ));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let worker = MeshWorker::new(
        MeshClient::new(config).unwrap(),
        engine,
        env.clock.clone(),
        MeshSettings::default(),
    )
    .on_failure(move |f| record.lock().unwrap().push(f));

    assert!(worker.receive().is_err());
    assert_eq!(*seen.lock().unwrap(), [MeshFailure::Receive]);

    env.store
        .mesh_enqueue(
            &[NewMeshMessage {
                local_id: "cpis-notification-test".into(),
                recipient: "LA001OT".into(),
                workflow_id: cpis_core::mesh::WORKFLOW_ACCESS.into(),
                subject: None,
                filename: None,
                content_type: "application/json".into(),
                body: b"{}".to_vec(),
                created_at: env.clock.now(),
            }],
            &[],
        )
        .unwrap();
    let pass = worker.send_due().unwrap();
    assert_eq!(pass.failed, 1);
    assert_eq!(
        *seen.lock().unwrap(),
        [MeshFailure::Receive, MeshFailure::Send]
    );
    assert_eq!(MeshFailure::Send.as_str(), "send");
}
