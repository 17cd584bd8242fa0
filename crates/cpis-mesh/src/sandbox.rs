//! Test harness: runs NHS England's `mesh-sandbox` (PyPI) as a real MESH server.
//!
//! The Python interpreter comes from `CPIS_MESH_PYTHON` (a venv with
//! `tests/mesh/requirements.txt`; `scripts/test` makes one). Without it, tests call
//! [`python_or_skip`], which prints a skip message, unless `CPIS_REQUIRE_MESH=1`, where it
//! panics so that a missing sandbox cannot pass silently.
//!
//! ```no_run
//! use cpis_mesh::{sandbox::{python_or_skip, Sandbox}, MeshClient};
//! let Some(python) = python_or_skip("my_test") else { return };
//! let sandbox = Sandbox::start(&python, &["X26ABC1", "X26ABC2"]).unwrap();
//! let client = MeshClient::new(sandbox.config("X26ABC1")).unwrap();
//! client.handshake().unwrap();
//! ```

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{MeshConfig, TlsOptions};
use crate::retry::Retry;

/// Password mesh-sandbox gives every mailbox made from a data directory.
pub const PASSWORD: &str = "password";

/// How long [`Sandbox::start`] waits for `/health` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The sandbox's Python interpreter from `CPIS_MESH_PYTHON`, or `None` after printing a skip
/// message for `test`. Panics instead when `CPIS_REQUIRE_MESH=1`.
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CPIS_MESH_PYTHON").filter(|v| !v.is_empty()) {
        Some(python) => Some(PathBuf::from(python)),
        None => {
            if std::env::var("CPIS_REQUIRE_MESH").is_ok_and(|v| v == "1") {
                panic!("{test}: CPIS_REQUIRE_MESH=1 but CPIS_MESH_PYTHON is not set");
            }
            eprintln!(
                "SKIPPED {test}: set CPIS_MESH_PYTHON to a Python with tests/mesh/requirements.txt \
                 (scripts/test does) to run it against mesh-sandbox"
            );
            None
        }
    }
}

/// Certificates made for a TLS sandbox (PEM files): a throw-away CA, the server's
/// certificate for `127.0.0.1`/`localhost`, and a client certificate the server accepts.
#[derive(Clone, Debug)]
pub struct SandboxTls {
    /// The CA that signed both certificates (trust it as `ca_cert_pem`).
    pub ca_cert: PathBuf,
    /// Client certificate for `client_cert_pem`.
    pub client_cert: PathBuf,
    /// Client key for `client_key_pem`.
    pub client_key: PathBuf,
    /// The server's certificate.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
}

/// A running mesh-sandbox (`uvicorn mesh_sandbox.api:app`) with `AUTH_MODE=full` and
/// `STORE_MODE=file` on a free loopback port, its mailboxes and messages in a temporary
/// directory. Killed on drop.
pub struct Sandbox {
    python: PathBuf,
    root: tempfile::TempDir,
    port: u16,
    shared_key: String,
    tls: Option<SandboxTls>,
    child: Option<Child>,
}

impl Sandbox {
    /// Starts a plain-HTTP sandbox with the given mailboxes (upper-case ids; password
    /// [`PASSWORD`]) and waits until it answers.
    pub fn start(python: &Path, mailboxes: &[&str]) -> Result<Sandbox, String> {
        Self::launch(python, mailboxes, false)
    }

    /// Starts an HTTPS sandbox that requires a client certificate signed by its own test CA
    /// (see [`Sandbox::tls`]).
    pub fn start_tls(python: &Path, mailboxes: &[&str]) -> Result<Sandbox, String> {
        Self::launch(python, mailboxes, true)
    }

    fn launch(python: &Path, mailboxes: &[&str], tls: bool) -> Result<Sandbox, String> {
        let root = tempfile::Builder::new()
            .prefix("cpis-mesh-sandbox-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let data = root.path().join("mailboxes");
        for mailbox in mailboxes {
            if mailbox.is_empty() || *mailbox != mailbox.to_ascii_uppercase() {
                return Err(format!("mailbox ids must be upper case: {mailbox:?}"));
            }
            fs::create_dir_all(data.join(mailbox).join("in"))
                .map_err(|e| format!("mailbox directory: {e}"))?;
        }
        let tls = if tls {
            Some(make_certificates(&root.path().join("tls"))?)
        } else {
            None
        };
        let mut sandbox = Sandbox {
            python: python.to_owned(),
            root,
            port: free_port()?,
            shared_key: format!("cpis-test-{}", uuid::Uuid::new_v4().simple()),
            tls,
            child: None,
        };
        sandbox.start_again()?;
        Ok(sandbox)
    }

    /// Base URL: `http://127.0.0.1:PORT`, or `https://…` for a TLS sandbox.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after [`Sandbox::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared HMAC key it was started with.
    pub fn shared_key(&self) -> &str {
        &self.shared_key
    }

    /// Its `MAILBOXES_DATA_DIR` (mailboxes and messages, kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("mailboxes")
    }

    /// The test certificates, for a TLS sandbox.
    pub fn tls(&self) -> Option<&SandboxTls> {
        self.tls.as_ref()
    }

    /// The sandbox's output so far (uvicorn and mesh-sandbox logs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A client configuration for `mailbox` on this sandbox: right password and key, for a
    /// TLS sandbox its CA and client certificate; 10 s timeout, 3 quick retries.
    pub fn config(&self, mailbox: &str) -> MeshConfig {
        let mut config = MeshConfig::new(self.url(), mailbox, PASSWORD, &self.shared_key);
        config.timeout = Duration::from_secs(10);
        config.retry = Retry {
            attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        if let Some(tls) = &self.tls {
            config.tls = TlsOptions {
                client_cert_pem: Some(tls.client_cert.clone()),
                client_key_pem: Some(tls.client_key.clone()),
                ca_cert_pem: Some(tls.ca_cert.clone()),
            };
        }
        config
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server and waits for it to exit (an outage). The data directory stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port with the same data directory and key, and waits
    /// until `/health` answers.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("sandbox log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("sandbox log: {e}"))?;
        let mut cmd = Command::new(&self.python);
        cmd.args([
            "-m",
            "uvicorn",
            "mesh_sandbox.api:app",
            "--host",
            "127.0.0.1",
        ])
        .arg("--port")
        .arg(self.port.to_string())
        .args(["--log-level", "warning"])
        .env("AUTH_MODE", "full")
        .env("STORE_MODE", "file")
        .env("MAILBOXES_DATA_DIR", self.data_dir())
        .env("SHARED_KEY", &self.shared_key)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
        if let Some(tls) = &self.tls {
            cmd.arg("--ssl-certfile")
                .arg(&tls.server_cert)
                .arg("--ssl-keyfile")
                .arg(&tls.server_key)
                .arg("--ssl-ca-certs")
                .arg(&tls.ca_cert)
                .args(["--ssl-cert-reqs", "2"]);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.python.display()))?;
        self.child = Some(child);
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(2));
        if let Some(tls) = crate::tls::client_config(&self.config("HEALTH").tls)
            .map_err(|e| format!("TLS client for the health check: {e}"))?
        {
            builder = builder.tls_config(tls);
        }
        let agent = builder.build();
        let url = format!("{}/health", self.url());
        let started = Instant::now();
        loop {
            if agent.get(&url).call().is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                self.stop();
                return Err(format!("mesh-sandbox exited at start:\n{}", self.log()));
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                return Err(format!(
                    "mesh-sandbox did not answer {url} within {START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("sandbox.log")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files
/// in `dir`.
fn make_certificates(dir: &Path) -> Result<SandboxTls, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let err = |e: rcgen::Error| format!("test certificates: {e}");
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cpis-mesh test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;

    let server_key = KeyPair::generate().map_err(err)?;
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(err)?;
    server_params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params
        .signed_by(&server_key, &ca, &ca_key)
        .map_err(err)?;

    let client_key = KeyPair::generate().map_err(err)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "cpis-mesh test client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .map_err(err)?;

    let tls = SandboxTls {
        ca_cert: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    let write = |path: &Path, text: String| {
        fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(&tls.ca_cert, ca.pem())?;
    write(&tls.client_cert, client.pem())?;
    write(&tls.client_key, client_key.serialize_pem())?;
    write(&tls.server_cert, server.pem())?;
    write(&tls.server_key, server_key.serialize_pem())?;
    Ok(tls)
}
