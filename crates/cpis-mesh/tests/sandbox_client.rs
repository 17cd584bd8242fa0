//! The MESH client against NHS England's own mesh-sandbox (started per test; see
//! `cpis_mesh::sandbox`), and against NHS's Python `mesh-client` on the other end.
//! Without `CPIS_MESH_PYTHON` each sandbox test prints a skip message (fails with
//! `CPIS_REQUIRE_MESH=1`).

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpis_mesh::sandbox::{python_or_skip, Sandbox};
use cpis_mesh::{MeshClient, MeshConfig, MeshError, OutboundMessage, Retry, TlsOptions};

const A: &str = "X26CPIS1";
const B: &str = "X26LA001";

fn client(sandbox: &Sandbox, mailbox: &str) -> MeshClient {
    MeshClient::new(sandbox.config(mailbox)).unwrap()
}

fn message(to: &str, local_id: &str, body: &[u8]) -> OutboundMessage {
    OutboundMessage {
        to: to.into(),
        workflow_id: "CPIS_UPLOAD_REPORT".into(),
        local_id: local_id.into(),
        subject: Some("Upload report".into()),
        filename: Some("report.csv".into()),
        content_type: "text/csv".into(),
        body: body.to_vec(),
    }
}

/// Deterministic pseudo-random bytes (so chunk boundaries fall mid-"line").
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn python(python: &Path, code: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(code)
        .args(args)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn handshake_accepts_good_credentials_and_rejects_bad_ones() {
    let Some(py) = python_or_skip("handshake_accepts_good_credentials_and_rejects_bad_ones") else {
        return;
    };
    let sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    client(&sandbox, A).handshake().unwrap();

    let mut wrong_key = sandbox.config(A);
    wrong_key.shared_key = "not-the-key".into();
    let mut wrong_password = sandbox.config(A);
    wrong_password.password = "not-the-password".into();
    let mut unknown_mailbox = sandbox.config(A);
    unknown_mailbox.mailbox_id = "X26NOBODY".into();
    for config in [wrong_key, wrong_password, unknown_mailbox] {
        let err = MeshClient::new(config).unwrap().handshake().unwrap_err();
        match &err {
            MeshError::Rejected { status, .. } => {
                assert!(matches!(status, 401 | 403), "{err}");
            }
            other => panic!("expected Rejected 401/403, got {other:?}"),
        }
        assert!(!err.is_retryable());
    }
}

#[test]
fn small_message_round_trip_with_acknowledge() {
    let Some(py) = python_or_skip("small_message_round_trip_with_acknowledge") else {
        return;
    };
    let sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    let a = client(&sandbox, A);
    let b = client(&sandbox, B);
    assert_eq!(b.mailbox_id(), B);
    assert!(b.inbox().unwrap().is_empty());

    let body = b"nhs_number,outcome\n9990597634,accepted\n";
    let id = a.send(&message(B, "local-small-1", body)).unwrap();
    assert!(!id.is_empty());

    assert_eq!(b.inbox().unwrap(), vec![id.clone()]);
    let got = b.download(&id).unwrap();
    assert_eq!(got.message_id, id);
    assert_eq!(got.sender, A);
    assert_eq!(got.recipient, B);
    assert_eq!(got.workflow_id.as_deref(), Some("CPIS_UPLOAD_REPORT"));
    assert_eq!(got.local_id.as_deref(), Some("local-small-1"));
    assert_eq!(got.subject.as_deref(), Some("Upload report"));
    assert_eq!(got.filename.as_deref(), Some("report.csv"));
    assert_eq!(got.message_type, "DATA");
    assert_eq!(got.content_type.as_deref(), Some("text/csv"));
    assert_eq!(got.body, body);

    // Downloading does not remove it; acknowledging does (and is idempotent).
    assert_eq!(b.inbox().unwrap(), vec![id.clone()]);
    b.acknowledge(&id).unwrap();
    assert!(b.inbox().unwrap().is_empty());
    b.acknowledge(&id).unwrap();
    assert_eq!(a.track(&id).unwrap().status, "acknowledged");

    // Refusals are Rejected, not retried: unknown recipient, empty body, unknown message.
    let err = a.send(&message("X26NOBODY", "local-x", b"x")).unwrap_err();
    assert!(
        matches!(err, MeshError::Rejected { status: 417, .. }),
        "{err}"
    );
    let err = a.send(&message(B, "local-empty", b"")).unwrap_err();
    assert!(
        matches!(err, MeshError::Rejected { status: 417, .. }),
        "{err}"
    );
    let err = b.download("NOSUCHMESSAGE0000").unwrap_err();
    assert!(
        matches!(err, MeshError::Rejected { status: 404, .. }),
        "{err}"
    );
}

#[test]
fn chunked_messages_both_ways_and_with_nhs_mesh_client() {
    let Some(py) = python_or_skip("chunked_messages_both_ways_and_with_nhs_mesh_client") else {
        return;
    };
    let sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    let mut config = sandbox.config(A);
    config.max_chunk_bytes = 1000;
    let a = MeshClient::new(config).unwrap();
    let b = client(&sandbox, B);

    // Ours to ours: 5 chunks, the last one short.
    let body = bytes(4321, 1);
    let id = a.send(&message(B, "local-chunked-1", &body)).unwrap();
    let got = b.download(&id).unwrap();
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body, "reassembled body differs");
    assert_eq!(
        got.content_type.as_deref(),
        Some("text/csv"),
        "Mex-Content-Type kept"
    );
    assert_eq!(got.local_id.as_deref(), Some("local-chunked-1"));
    let tracked = a.track(&id).unwrap();
    assert_eq!(tracked.status, "accepted");

    // NHS's Python mesh-client reads our chunked message byte-identically.
    let read = python(
        &py,
        r#"
import sys, hashlib, mesh_client
url, mailbox, key, message_id = sys.argv[1:5]
with mesh_client.MeshClient(url, mailbox, "password", shared_key=key.encode(), verify=False) as c:
    m = c.retrieve_message(message_id)
    data = m.read()
    print(hashlib.sha256(data).hexdigest(), len(data), m.workflow_id, m.local_id)
"#,
        &[&sandbox.url(), B, sandbox.shared_key(), &id],
    );
    assert_eq!(
        read,
        format!(
            "{} {} CPIS_UPLOAD_REPORT local-chunked-1",
            sha256_hex(&body),
            body.len()
        )
    );

    // NHS's mesh-client sends chunked and gzip-compressed (transparent_compress); we read it.
    let py_body = bytes(3000, 2);
    let file = sandbox.data_dir().parent().unwrap().join("py-body.bin");
    std::fs::write(&file, &py_body).unwrap();
    let py_id = python(
        &py,
        r#"
import sys, mesh_client
url, mailbox, key, to, path = sys.argv[1:6]
with mesh_client.MeshClient(url, mailbox, "password", shared_key=key.encode(), verify=False,
                            max_chunk_size=700, transparent_compress=True, max_retries=0) as c:
    c.handshake()
    with open(path, "rb") as f:
        data = f.read()
    print(c.send_message(to, data, workflow_id="PY_WORKFLOW", local_id="py-local-1",
                         subject="from python", filename="py.bin"))
"#,
        &[
            &sandbox.url(),
            A,
            sandbox.shared_key(),
            B,
            file.to_str().unwrap(),
        ],
    );
    let got = b.download(&py_id).unwrap();
    assert!(got.body == py_body, "mesh-client's chunked message differs");
    assert_eq!(got.sender, A);
    assert_eq!(got.workflow_id.as_deref(), Some("PY_WORKFLOW"));
    assert_eq!(got.local_id.as_deref(), Some("py-local-1"));
    assert_eq!(got.subject.as_deref(), Some("from python"));
    assert_eq!(got.filename.as_deref(), Some("py.bin"));
    b.acknowledge(&py_id).unwrap();
    b.acknowledge(&id).unwrap();
    assert!(b.inbox().unwrap().is_empty());
}

#[test]
fn inbox_follows_paging_links() {
    let Some(py) = python_or_skip("inbox_follows_paging_links") else {
        return;
    };
    let sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    let a = client(&sandbox, A);
    let mut config = sandbox.config(B);
    config.inbox_page_size = Some(10); // mesh-sandbox's smallest max_results
    let b = MeshClient::new(config).unwrap();

    let mut sent = Vec::new();
    for i in 0..25 {
        sent.push(
            a.send(&message(B, &format!("local-page-{i}"), b"x"))
                .unwrap(),
        );
    }
    let first = b.inbox_page(None).unwrap();
    assert_eq!(first.messages.len(), 10);
    assert!(first.next.is_some(), "a next link with more than one page");
    assert_eq!(first.approx_inbox_count, Some(25));

    let all = b.inbox().unwrap();
    assert_eq!(all.len(), 25, "{all:?}");
    let mut sorted_all = all.clone();
    sorted_all.sort();
    sorted_all.dedup();
    assert_eq!(sorted_all.len(), 25, "no id twice");
    let mut sorted_sent = sent.clone();
    sorted_sent.sort();
    assert_eq!(sorted_all, sorted_sent);
}

#[test]
fn track_by_local_id_finds_sent_messages_only() {
    let Some(py) = python_or_skip("track_by_local_id_finds_sent_messages_only") else {
        return;
    };
    let sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    let a = client(&sandbox, A);
    let b = client(&sandbox, B);
    let id = a.send(&message(B, "local-track-1", b"hello")).unwrap();

    let found = a.track_by_local_id("local-track-1").unwrap().unwrap();
    assert_eq!(found.message_id, id);
    assert_eq!(found.local_id.as_deref(), Some("local-track-1"));
    assert_eq!(found.recipient.as_deref(), Some(B));
    assert_eq!(found.status, "accepted");

    assert_eq!(a.track_by_local_id("local-never-sent").unwrap(), None);
    assert_eq!(
        b.track_by_local_id("local-track-1").unwrap(),
        None,
        "only the sender's"
    );

    let by_id = a.track(&id).unwrap();
    assert_eq!(by_id.message_id, id);
    assert_eq!(by_id.local_id.as_deref(), Some("local-track-1"));
    let err = a.track("NOSUCHMESSAGE0000").unwrap_err();
    assert!(
        matches!(err, MeshError::Rejected { status: 404, .. }),
        "{err}"
    );
}

#[test]
fn outage_gives_unavailable_quickly_and_messages_survive_a_restart() {
    let Some(py) =
        python_or_skip("outage_gives_unavailable_quickly_and_messages_survive_a_restart")
    else {
        return;
    };
    let mut sandbox = Sandbox::start(&py, &[A, B]).unwrap();
    let a = client(&sandbox, A);
    let b = client(&sandbox, B);
    let mut chunked = sandbox.config(A);
    chunked.max_chunk_bytes = 100;
    let a_chunked = MeshClient::new(chunked).unwrap();
    let body = bytes(450, 3);
    let id = a_chunked
        .send(&message(B, "local-outage-1", &body))
        .unwrap();
    assert_eq!(b.inbox().unwrap(), vec![id.clone()]);

    sandbox.stop();
    let timeout = sandbox.config(A).timeout;
    let started = Instant::now();
    for err in [
        b.inbox().unwrap_err(),
        b.download(&id).unwrap_err(),
        b.acknowledge(&id).unwrap_err(),
        a.send(&message(B, "local-outage-2", b"x")).unwrap_err(),
        a.track_by_local_id("local-outage-1").unwrap_err(),
        a.handshake().unwrap_err(),
    ] {
        assert!(matches!(err, MeshError::Unavailable(_)), "{err:?}");
        assert!(err.is_retryable());
    }
    assert!(
        started.elapsed() < timeout,
        "six calls took {:?} while MESH was down",
        started.elapsed()
    );

    sandbox.start_again().unwrap();
    assert_eq!(
        b.inbox().unwrap(),
        vec![id.clone()],
        "persisted across restart"
    );
    let got = b.download(&id).unwrap();
    assert!(got.body == body);
    let tracked = a.track_by_local_id("local-outage-1").unwrap().unwrap();
    assert_eq!(tracked.message_id, id);
    assert_eq!(
        a.track_by_local_id("local-outage-2").unwrap(),
        None,
        "never sent"
    );
    b.acknowledge(&id).unwrap();
    assert!(b.inbox().unwrap().is_empty());
}

#[test]
fn mutual_tls_needs_the_client_certificate_and_the_right_ca() {
    let Some(py) = python_or_skip("mutual_tls_needs_the_client_certificate_and_the_right_ca")
    else {
        return;
    };
    let sandbox = Sandbox::start_tls(&py, &[A, B]).unwrap();
    assert!(sandbox.url().starts_with("https://"));
    let a = client(&sandbox, A);
    let b = client(&sandbox, B);
    a.handshake().unwrap();
    let id = a.send(&message(B, "local-tls-1", b"over mTLS")).unwrap();
    assert_eq!(b.download(&id).unwrap().body, b"over mTLS");
    b.acknowledge(&id).unwrap();

    let tls = sandbox.tls().unwrap();
    let mut no_cert = sandbox.config(A);
    no_cert.retry = Retry::none();
    no_cert.tls = TlsOptions {
        ca_cert_pem: Some(tls.ca_cert.clone()),
        ..TlsOptions::default()
    };
    let err = MeshClient::new(no_cert).unwrap().handshake().unwrap_err();
    eprintln!("without a client certificate: {err}");
    assert!(matches!(err, MeshError::Unavailable(_)), "{err:?}");

    // Without the test CA (webpki roots only) the server is not trusted.
    let mut untrusted = sandbox.config(A);
    untrusted.retry = Retry::none();
    untrusted.tls.ca_cert_pem = None;
    let err = MeshClient::new(untrusted).unwrap().handshake().unwrap_err();
    eprintln!("without the CA: {err}");
    assert!(matches!(err, MeshError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // Plain HTTP to the TLS port gets nothing useful either.
    let mut plain = sandbox.config(A);
    plain.retry = Retry::none();
    plain.url = plain.url.replace("https://", "http://");
    plain.tls = TlsOptions::default();
    assert!(MeshClient::new(plain).unwrap().handshake().is_err());
}

/// A server that accepts connections and never answers: every call ends after the timeout
/// with `Unavailable`; the idempotent handshake is retried, the first POST of a send is not.
#[test]
fn silent_server_times_out_and_send_is_not_repeated() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut c = conn.try_clone().unwrap();
                std::thread::spawn(move || {
                    let mut sink = [0u8; 4096];
                    while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
                });
                held.push(conn);
            }
        });
    }
    let mut config = MeshConfig::new(format!("http://127.0.0.1:{port}"), A, "p", "k");
    config.timeout = Duration::from_millis(500);
    config.retry = Retry {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    let c = MeshClient::new(config).unwrap();

    let started = Instant::now();
    let err = c.handshake().unwrap_err();
    assert!(matches!(err, MeshError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "handshake tried 3 times"
    );

    let before = accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    let err = c.send(&message(B, "local-silent-1", b"x")).unwrap_err();
    assert!(matches!(err, MeshError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst) - before,
        1,
        "the first POST of a send that may have arrived is never repeated"
    );
}
