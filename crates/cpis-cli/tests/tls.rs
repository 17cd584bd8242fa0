//! `cpis serve --tls-cert --tls-key` (docs/SECURITY.md, "Transport and headers"): HTTPS with
//! rustls, checked with a real TLS client (`curl`) against a throw-away self-signed certificate
//! made with the `openssl` CLI. Skipped, saying so, where either tool is missing.

mod support;

use support::process::stop;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tool(name: &str, arg: &str) -> bool {
    Command::new(name)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` against `https://localhost:{port}{path}`, resolved to 127.0.0.1; prints the response
/// headers then the body.
fn curl(port: u16, path: &str, extra: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("run curl")
}

fn make_certificate(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serves_https_with_the_configured_certificate_and_sends_hsts() {
    if !tool("openssl", "version") || !tool("curl", "--version") {
        eprintln!(
            "SKIPPED serves_https_with_the_configured_certificate_and_sends_hsts: \
             needs the openssl and curl commands"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certificate(dir.path());
    let cert = dir.path().join("cert.pem");
    let cacert = cert.to_str().unwrap().to_owned();
    let port = free_port();
    let log_path = dir.path().join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("tls.db").display()))
        .args(["serve", "--demo", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .env_remove("CPIS_CONFIG")
        .env_remove("CPIS_BIND")
        .env_remove("CPIS_TLS_CERT")
        .env_remove("CPIS_TLS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let started = Instant::now();
    let reply = loop {
        let out = curl(port, "/healthz", &["--cacert", &cacert]);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if started.elapsed() > Duration::from_secs(120) {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            stop(child);
            panic!("no HTTPS answer after 120 s: {err}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let checks =
        || {
            let lower = reply.to_ascii_lowercase();
            assert!(lower.starts_with("http/"), "{reply}");
            assert!(lower.lines().next().unwrap().contains(" 200"), "{reply}");
            assert!(reply.ends_with("ok"), "body: {reply}");
            for header in [
                "strict-transport-security: max-age=",
                "x-content-type-options: nosniff",
                "x-frame-options: deny",
                "content-security-policy:",
                "referrer-policy: no-referrer",
                "cache-control: no-store",
            ] {
                assert!(lower.contains(header), "{header} missing:\n{reply}");
            }
            let hsts = lower
                .lines()
                .find(|l| l.starts_with("strict-transport-security:"))
                .unwrap();
            let max_age: u64 = hsts
                .split("max-age=")
                .nth(1)
                .unwrap()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(max_age >= 31_536_000, "HSTS for at least a year: {hsts}");

            // The API works over TLS: an authenticated FHIR lookup.
            let out = curl(
            port,
            "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990597634",
            &["--cacert", &cacert, "-H", "Authorization: Bearer demo-RDEMO01"],
        );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.lines().next().unwrap().contains(" 200"), "{text}");
            assert!(text.contains("\"searchset\""), "{text}");

            // A client that does not trust the certificate refuses it.
            let out = curl(port, "/healthz", &[]);
            assert!(
                !out.status.success(),
                "an untrusted certificate was accepted"
            );
            // Plain HTTP on the TLS port gets no page.
            let out = Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "5",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                ])
                .arg(format!("http://127.0.0.1:{port}/healthz"))
                .output()
                .unwrap();
            assert_ne!(
                String::from_utf8_lossy(&out.stdout),
                "200",
                "plain HTTP served"
            );
        };
    let result = std::panic::catch_unwind(checks);
    stop(child);
    if let Err(e) = result {
        eprintln!("server log:\n{}", log());
        std::panic::resume_unwind(e);
    }
    assert!(log().contains("cpis listening on https://"), "{}", log());
}
