//! Faults (issue #12): the real `cpis serve` while its database goes away or its disk fills.
//!
//! * `postgresql_restart_during_uploads_and_lookups`: a private PostgreSQL cluster (never the
//!   machine's shared server) is stopped (`pg_ctl stop -m fast`) and started again while two cpis
//!   servers on it take uploads, notifying lookups and notification reads. While it is down every
//!   answer is 503 (an `OperationOutcome` with issue code `transient` on the FHIR API, `unavailable`
//!   JSON or a `CPF05` report on the LA API), never a 500 and never a hang; once it is back both
//!   servers answer again by themselves, within a bound, without a restart; after a second restart
//!   while they sit idle, their very first lookup and upload succeed. Afterwards everything
//!   they acknowledged is there: every upload answered 2xx has its report and records, every
//!   lookup that showed a flag has its access notification for each LA it showed. Every upload
//!   refused with 503 is sent again and applies (nothing of it was half-applied).
//!   Runs when PostgreSQL's server programs are installed (`/usr/lib/postgresql/*/bin`, `PATH`,
//!   or `CPIS_TEST_PG_BINDIR`); as root they run as the `postgres` OS user. Otherwise prints
//!   "skipped" and passes, unless `CPIS_REQUIRE_PG=1`.
//! * `sqlite_volume_full`: the SQLite database (and its spool directory beside it) on a small
//!   tmpfs filled by a filler file. Writes fail with 503 / `CPF05` (temporarily unavailable), an
//!   upload that failed leaves nothing behind (no report, no records), reads still answer and the
//!   server stays up; once the filler is deleted new uploads and lookups succeed without a
//!   restart, the audit chain verifies and `PRAGMA integrity_check` says `ok`. Needs to mount a
//!   tmpfs (root); otherwise prints "skipped: cannot mount tmpfs" and passes.
//!
//! ```text
//! cargo test -p cpis-cli --test faults -- --nocapture
//! ```

mod support;

use support::demo_data::{emergency_tokens, new_children, uploaded_children, HIGH_ANOMALY_LIMITS};
use support::http::{free_port, Reply};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COVENTRY: &str = "E08000026";
const COVENTRY_TOKEN: &str = "demo-E08000026";
/// An emergency-department clinician: every lookup that finds a child notifies.
const ED_TOKEN: &str = "demo-RDEMO01";
const HEADER: &str = "action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive";
/// No request may take longer than this: a reply later than that is a hang.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// How long a server may take to answer again once PostgreSQL is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Demo data.

/// Children the demo uploads (not the errors file) give a plan, those of several LAs first.
fn flagged_children(n: usize) -> Vec<String> {
    let held = uploaded_children(false);
    let mut out: Vec<String> = held
        .iter()
        .filter(|(_, las)| las.len() > 1)
        .map(|(n, _)| n.clone())
        .collect();
    out.extend(
        held.iter()
            .filter(|(_, las)| las.len() == 1)
            .map(|(n, _)| n.clone()),
    );
    out.truncate(n);
    out
}

/// A delta upload file for Coventry: its file id, CSV and NHS numbers.
#[derive(Clone)]
struct UploadFile {
    file_id: String,
    csv: String,
    children: Vec<String>,
}

fn upload_file(file_id: &str, children: &[(String, String)]) -> UploadFile {
    let mut csv = format!("{HEADER}\n");
    for (j, (nhs, dob)) in children.iter().enumerate() {
        csv.push_str(&format!(
            "upsert,{nhs},{file_id}-{j},Fault,Test,{dob},CPP,2026-10-01,,,false\n"
        ));
    }
    UploadFile {
        file_id: file_id.to_owned(),
        csv,
        children: children.iter().map(|(n, _)| n.clone()).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The cpis binary.

fn cpis(database: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpis"));
    c.arg("--database")
        .arg(database)
        .env_remove("CPIS_CONFIG")
        .env_remove("CPIS_LOG")
        .env_remove("CPIS_BIND")
        .env_remove("CPIS_DATABASE_URL")
        .env_remove("CPIS_READ_DATABASE_URL")
        .env_remove("RUST_LOG");
    c
}

/// Runs `cpis …` to completion and fails the test unless it succeeds; returns its stdout.
#[track_caller]
fn cpis_ok(database: &str, args: &[&str]) -> String {
    let out = cpis(database)
        .args(["--log", "warn"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cpis {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `cpis serve`, killed when dropped (also when the test fails).
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(database: &str, config: &Path, dir: &Path, name: &str) -> Server {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = cpis(database)
            .arg("--config")
            .arg(config)
            .args(["--log", "warn", "serve", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start cpis serve");
        let mut server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if get(port, "/readyz", &[]).is_ok_and(|r| r.status == 200) {
                return server;
            }
            assert!(
                server.running() && Instant::now() < deadline,
                "server {name} not ready on port {port}:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|s| s.is_none())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test unless the process still runs and answers `/healthz`.
    #[track_caller]
    fn assert_up(&mut self) {
        assert!(
            self.running(),
            "cpis exited: {:?}\n{}",
            self.child.try_wait(),
            self.log_text()
        );
        let r = get(self.port, "/healthz", &[]).expect("/healthz answers");
        assert_eq!(r.status, 200);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: the shared client (tests/support/http.rs), each bounded by [`REQUEST_LIMIT`].

fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    support::http::http_within(REQUEST_LIMIT, port, method, path, headers, body)
}

/// The LA Organizations in a FHIR lookup bundle: the LAs whose flag it shows.
fn flagged_las(r: &Reply) -> BTreeSet<String> {
    r.json()["entry"]
        .as_array()
        .map(|e| e.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Organization")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
    http(port, "GET", path, headers, b"")
}

/// A notifying lookup (`IsUnscheduledAccessEvent: true`) on the FHIR API.
fn lookup(port: u16, token: &str, nhs: &str) -> std::io::Result<Reply> {
    get(
        port,
        &format!("/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("IsUnscheduledAccessEvent", "true"),
        ],
    )
}

/// A delta upload by Coventry's system.
fn upload(port: u16, file: &UploadFile) -> std::io::Result<Reply> {
    http(
        port,
        "POST",
        &format!(
            "/api/v1/uploads?mode=delta&file_id={}&file_date=2026-11-01",
            file.file_id
        ),
        &[
            ("Authorization", &format!("Bearer {COVENTRY_TOKEN}")),
            ("Content-Type", "text/csv"),
        ],
        file.csv.as_bytes(),
    )
}

/// An LA's notifications, paged through with the `after` cursor. Checks the cursors run 1, 2, 3…
/// with no gap and the ids are unique.
#[track_caller]
fn all_notifications(port: u16, la: &str) -> Vec<Value> {
    let token = format!("Bearer demo-{la}");
    let mut out: Vec<Value> = Vec::new();
    let mut after = String::new();
    loop {
        let r = get(
            port,
            &format!("/api/v1/notifications?after={after}&limit=50"),
            &[("Authorization", &token)],
        )
        .unwrap();
        assert_eq!(r.status, 200, "{la} notifications: {}", r.text());
        let page = r.json();
        let items = page["notifications"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        after = page["next_cursor"].as_str().unwrap().to_owned();
        out.extend(items);
    }
    let cursors: Vec<u64> = out
        .iter()
        .map(|n| n["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        cursors,
        (1..=out.len() as u64).collect::<Vec<_>>(),
        "{la}: cursors 1..N with no gap"
    );
    let ids: BTreeSet<&str> = out.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), out.len(), "{la}: unique notification ids");
    out
}

/// An LA's `access` notifications counted by (child, organisation that looked).
fn access_counts(port: u16, la: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for n in all_notifications(port, la) {
        if n["kind"] == "access" {
            let key = (
                n["child"]["nhs_number"].as_str().unwrap().to_owned(),
                n["access"]["organisation"]["ods_code"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

/// A FHIR answer that says "temporarily unavailable": 503, an `OperationOutcome` with issue code
/// `transient`, `Retry-After`.
#[track_caller]
fn assert_fhir_unavailable(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    let body = r.json();
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: {body}");
    assert_eq!(body["issue"][0]["code"], "transient", "{what}: {body}");
    assert!(r.header("retry-after").is_some(), "{what}: Retry-After");
}

/// An LA API answer that says "temporarily unavailable": 503 with `Retry-After` and either the
/// `unavailable` error or (uploads) a `CPF05` report that stored nothing.
#[track_caller]
fn assert_api_unavailable(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    assert!(r.header("retry-after").is_some(), "{what}: Retry-After");
    let body = r.json();
    if body.get("file_outcome").is_some() {
        assert_eq!(body["file_outcome"], "CPF05", "{what}: {body}");
        assert!(
            body["file_outcome_description"]
                .as_str()
                .is_some_and(|d| d.contains("temporarily unavailable")),
            "{what}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("nothing was applied")),
            "{what}: {body}"
        );
    } else {
        assert_eq!(body["error"], "unavailable", "{what}: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("temporarily unavailable")),
            "{what}: {body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL cluster.

/// The directory holding `initdb` and `pg_ctl`: `CPIS_TEST_PG_BINDIR`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian, Ubuntu), or `PATH`.
fn pg_bindir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("CPIS_TEST_PG_BINDIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d)).filter(|d| has_tools(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has_tools(d))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of its own in a temporary directory, on a free loopback port, trust
/// authentication. As root its programs run as the `postgres` OS user (PostgreSQL refuses root).
/// Stopped (immediately) and deleted when dropped.
struct PgCluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Creates and starts the cluster; `None` (after saying "skipped") when PostgreSQL is not
    /// installed, unless `CPIS_REQUIRE_PG=1`.
    fn create() -> Option<PgCluster> {
        let skip = |why: &str| {
            support::external_suite::skip_unless_required(
                "CPIS_REQUIRE_PG",
                why,
                &format!("faults: PostgreSQL restart test skipped: {why}"),
            );
            None
        };
        let Some(bindir) = pg_bindir() else {
            return skip(
                "no PostgreSQL server programs (initdb, pg_ctl) found in /usr/lib/postgresql/*/bin, \
                 PATH or CPIS_TEST_PG_BINDIR",
            );
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("cpis-faults-pg-")
            .tempdir()
            .unwrap();
        if as_postgres {
            let id = |flag: &str| -> Option<u32> {
                let o = Command::new("id").args([flag, "postgres"]).output().ok()?;
                String::from_utf8_lossy(&o.stdout).trim().parse().ok()
            };
            let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
                return skip(
                    "running as root and there is no `postgres` OS user to run PostgreSQL as",
                );
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let cluster = PgCluster {
            bindir,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        cluster.run_ok(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        cluster.start();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bindir.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    #[track_caller]
    fn run_ok(&self, program: &str, args: &[&str]) {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
        );
    }

    /// Starts the server and waits until it accepts connections. `fsync=off`: the fault here is
    /// the server process going away cleanly, not the machine losing power.
    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run_ok(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
            ],
        );
    }

    /// `pg_ctl stop -m fast`: every session is ended and the server shuts down.
    fn stop(&self) {
        self.run_ok(
            "pg_ctl",
            &["stop", "-D", &self.data(), "-m", "fast", "-w", "-t", "60"],
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
            ],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL restarted during uploads and lookups.

#[derive(Clone, Debug)]
enum Ask {
    /// A notifying lookup of `nhs` by a clinician of `org`.
    Lookup { nhs: String, org: String },
    /// Upload file number `file`.
    Upload { file: usize },
    /// Coventry's notification list.
    Notifications,
}

/// One request and how it ended.
struct Exchange {
    ask: Ask,
    port: u16,
    sent: Instant,
    done: Instant,
    reply: Result<Reply, String>,
}

type Journal = Arc<Mutex<Vec<Exchange>>>;

/// Sends a request, notes it in the journal and returns its status (`None`: no answer).
fn record(
    journal: &Journal,
    ask: Ask,
    port: u16,
    send: impl FnOnce() -> std::io::Result<Reply>,
) -> Option<u16> {
    let sent = Instant::now();
    let reply = send().map_err(|e| e.to_string());
    let status = reply.as_ref().ok().map(|r| r.status);
    journal.lock().unwrap().push(Exchange {
        ask,
        port,
        sent,
        done: Instant::now(),
        reply,
    });
    status
}

/// The last answer `port` gave to a request `is` picks (the main thread's own probe).
#[track_caller]
fn last_reply(journal: &[Exchange], port: u16, is: impl Fn(&Ask) -> bool) -> &Reply {
    let x = journal
        .iter()
        .rev()
        .find(|x| x.port == port && is(&x.ask))
        .expect("the probe is in the journal");
    x.reply.as_ref().expect("the probe was answered")
}

fn org_of(token: &str) -> String {
    token.trim_start_matches("demo-").to_owned()
}

#[test]
fn postgresql_restart_during_uploads_and_lookups() {
    let started = Instant::now();
    let Some(cluster) = PgCluster::create() else {
        return;
    };
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cpis.toml");
    std::fs::write(&config, HIGH_ANOMALY_LIMITS).unwrap();
    cpis_ok(&url, &["demo", "load"]);
    let coventry = cpis_domain::OdsCode::parse(COVENTRY).unwrap();
    let coventry_records_before = cpis_store::open(&url)
        .unwrap()
        .la_record_count(&coventry)
        .unwrap();

    // Two servers on the one database (SPEC 5: stateless servers share it).
    let a = Server::start(&url, &config, dir.path(), "a");
    let b = Server::start(&url, &config, dir.path(), "b");
    let ports = [a.port, b.port];
    let targets = flagged_children(60);
    let tokens = emergency_tokens();
    assert!(tokens.len() >= 3, "several emergency-care identities");
    let files: Arc<Vec<UploadFile>> = Arc::new(
        new_children(200)
            .chunks(2)
            .enumerate()
            .map(|(i, c)| upload_file(&format!("pg-fault-{i}"), c))
            .collect(),
    );
    // The last files are the main thread's probes; the client loop takes the others in turn.
    let probe_files = files.len() - 10;
    let las_of_targets: BTreeSet<String> = {
        let held = uploaded_children(false);
        targets.iter().flat_map(|n| held[n].clone()).collect()
    };
    let baseline: BTreeMap<String, BTreeMap<(String, String), usize>> = las_of_targets
        .iter()
        .map(|la| (la.clone(), access_counts(a.port, la)))
        .collect();

    // The client loop: two lookup threads, an uploader, a notification reader, both servers.
    let journal: Journal = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for t in 0..2 {
        let (journal, stop, targets, tokens) = (
            journal.clone(),
            stop.clone(),
            targets.clone(),
            tokens.clone(),
        );
        clients.push(std::thread::spawn(move || {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let nhs = targets[i % targets.len()].clone();
                let token = &tokens[(i / 2) % tokens.len()];
                let port = ports[i % 2];
                let ask = Ask::Lookup {
                    nhs: nhs.clone(),
                    org: org_of(token),
                };
                record(&journal, ask, port, || lookup(port, token, &nhs));
                i += 2;
                std::thread::sleep(Duration::from_millis(15));
            }
        }));
    }
    {
        let (journal, stop, files) = (journal.clone(), stop.clone(), files.clone());
        clients.push(std::thread::spawn(move || {
            for file in 0..probe_files {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let port = ports[file % 2];
                record(&journal, Ask::Upload { file }, port, || {
                    upload(port, &files[file])
                });
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    {
        let (journal, stop) = (journal.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let port = ports[i % 2];
                record(&journal, Ask::Notifications, port, || {
                    get(
                        port,
                        "/api/v1/notifications?limit=5",
                        &[("Authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
                    )
                });
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }

    std::thread::sleep(Duration::from_millis(1500));

    // PostgreSQL goes away.
    let outage_begins = Instant::now();
    cluster.stop();
    let down_from = Instant::now();
    println!(
        "PostgreSQL stopped after {:?} of load ({:?} to stop)",
        outage_begins - started,
        down_from - outage_begins
    );
    // While it is down, each server answers every kind of request 503, promptly.
    let mut next_probe = probe_files;
    for (s, &port) in ports.iter().enumerate() {
        let t = Instant::now();
        let ask = Ask::Lookup {
            nhs: targets[0].clone(),
            org: org_of(ED_TOKEN),
        };
        record(&journal, ask, port, || lookup(port, ED_TOKEN, &targets[0]));
        let file = next_probe;
        next_probe += 1;
        record(&journal, Ask::Upload { file }, port, || {
            upload(port, &files[file])
        });
        let r = get(
            port,
            "/api/v1/notifications",
            &[("Authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
        )
        .expect("the notification list answers while PostgreSQL is down");
        assert_api_unavailable(&r, "notifications while PostgreSQL is down");
        let r = get(port, "/readyz", &[]).unwrap();
        assert_eq!(
            r.status,
            503,
            "/readyz while PostgreSQL is down: {}",
            r.text()
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "server {s} took {:?} to refuse four requests while PostgreSQL was down",
            t.elapsed()
        );
        let j = journal.lock().unwrap();
        assert_fhir_unavailable(
            last_reply(
                &j,
                port,
                |a| matches!(a, Ask::Lookup { nhs, .. } if *nhs == targets[0]),
            ),
            &format!("lookup on server {s} while PostgreSQL is down"),
        );
        assert_api_unavailable(
            last_reply(
                &j,
                port,
                |a| matches!(a, Ask::Upload { file: f } if *f == file),
            ),
            &format!("upload on server {s} while PostgreSQL is down"),
        );
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(down_from.elapsed()));

    // PostgreSQL comes back; the servers reconnect by themselves.
    let down_until = Instant::now();
    cluster.start();
    let up_at = Instant::now();
    for (s, &port) in ports.iter().enumerate() {
        loop {
            let ask = Ask::Lookup {
                nhs: targets[1].clone(),
                org: org_of(ED_TOKEN),
            };
            let status = record(&journal, ask, port, || lookup(port, ED_TOKEN, &targets[1]));
            match status.expect("a lookup answers while PostgreSQL restarts") {
                200 => break,
                503 => assert!(
                    up_at.elapsed() < RECOVERY_LIMIT,
                    "server {s} still refuses lookups {RECOVERY_LIMIT:?} after PostgreSQL came back:\n{}",
                    [&a, &b][s].log_text()
                ),
                other => panic!("lookup while PostgreSQL restarts: {other}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let file = next_probe;
        next_probe += 1;
        record(&journal, Ask::Upload { file }, port, || {
            upload(port, &files[file])
        });
        let j = journal.lock().unwrap();
        let r = last_reply(
            &j,
            port,
            |a| matches!(a, Ask::Upload { file: f } if *f == file),
        );
        assert_eq!(
            r.status,
            201,
            "upload once PostgreSQL is back: {}",
            r.text()
        );
    }
    let recovered_at = Instant::now();
    println!(
        "PostgreSQL down for {:?}; both servers answering again {:?} after it started",
        down_until - down_from,
        recovered_at - up_at
    );
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    // A restart while the servers are idle: every pooled connection broke unnoticed, yet the
    // first requests afterwards succeed (idle connections are checked before reuse).
    cluster.stop();
    cluster.start();
    for &port in &ports {
        let ask = Ask::Lookup {
            nhs: targets[2].clone(),
            org: org_of(ED_TOKEN),
        };
        let first = record(&journal, ask, port, || lookup(port, ED_TOKEN, &targets[2]));
        let file = next_probe;
        next_probe += 1;
        let then = record(&journal, Ask::Upload { file }, port, || {
            upload(port, &files[file])
        });
        assert_eq!(
            (first, then),
            (Some(200), Some(201)),
            "the first lookup and upload after PostgreSQL restarted while the servers were idle"
        );
    }

    // Every exchange: answered in time, 2xx or 503 (never a 500), 503 while PostgreSQL was down,
    // 2xx before the outage and after the servers had recovered.
    let journal = std::mem::take(&mut *journal.lock().unwrap());
    let mut tally: BTreeMap<(&str, &str, u16), usize> = BTreeMap::new();
    for x in &journal {
        let what = format!("{:?} on port {}", x.ask, x.port);
        let r = x.reply.as_ref().unwrap_or_else(|e| {
            panic!(
                "{what}: no answer ({e})\nserver a:\n{}\nserver b:\n{}",
                a.log_text(),
                b.log_text()
            )
        });
        assert!(
            matches!(r.status, 200 | 201 | 503),
            "{what}: {} {}\nserver a:\n{}\nserver b:\n{}",
            r.status,
            r.text(),
            a.log_text(),
            b.log_text()
        );
        if r.status == 503 {
            match x.ask {
                Ask::Lookup { .. } => assert_fhir_unavailable(r, &what),
                _ => assert_api_unavailable(r, &what),
            }
        }
        let phase = if x.done < outage_begins {
            assert_ne!(r.status, 503, "{what}: before the outage");
            "before"
        } else if x.sent >= down_from && x.done <= down_until {
            assert_eq!(r.status, 503, "{what}: while PostgreSQL was down");
            "down"
        } else if x.sent >= recovered_at {
            assert_ne!(r.status, 503, "{what}: after recovery");
            "after"
        } else {
            "between"
        };
        let kind = match x.ask {
            Ask::Lookup { .. } => "lookup",
            Ask::Upload { .. } => "upload",
            Ask::Notifications => "notifications",
        };
        *tally.entry((phase, kind, r.status)).or_default() += 1;
    }
    println!("exchanges by (phase, kind, status): {tally:?}");
    for (phase, kind, status) in [
        ("before", "lookup", 200),
        ("before", "upload", 201),
        ("down", "lookup", 503),
        ("down", "upload", 503),
        ("down", "notifications", 503),
        ("after", "lookup", 200),
        ("after", "upload", 201),
        ("after", "notifications", 200),
    ] {
        assert!(
            tally.get(&(phase, kind, status)).copied().unwrap_or(0) > 0,
            "no {kind} answered {status} {phase} the outage: {tally:?}"
        );
    }

    // Uploads: the acknowledged ones have their reports; the refused ones, sent again, apply now
    // (nothing of them was kept) — or, if PostgreSQL committed just before the connection went,
    // are recognised as already applied.
    let mut applied: BTreeMap<usize, String> = BTreeMap::new();
    let mut refused = BTreeSet::new();
    for x in &journal {
        if let (Ask::Upload { file }, Ok(r)) = (&x.ask, &x.reply) {
            match r.status {
                201 => {
                    let body = r.json();
                    assert_eq!(body["file_outcome"], "CPF02", "{body}");
                    applied.insert(*file, body["id"].as_str().unwrap().to_owned());
                }
                503 => {
                    refused.insert(*file);
                }
                s => panic!("upload {file}: {s} {}", r.text()),
            }
        }
    }
    let mut replayed = 0;
    for &file in &refused {
        let r = upload(a.port, &files[file]).unwrap();
        let body = r.json();
        match r.status {
            201 => {
                assert_eq!(body["file_outcome"], "CPF02", "{body}");
                applied.insert(file, body["id"].as_str().unwrap().to_owned());
            }
            200 => {
                assert_eq!(body["status"], "duplicate", "{body}");
                replayed += 1;
                applied.insert(file, body["duplicate_of"].as_str().unwrap().to_owned());
            }
            s => panic!("upload {file} sent again: {s} {body}"),
        }
    }
    println!(
        "uploads: {} acknowledged, {} refused with 503 then sent again ({} of those had been applied)",
        applied.len() - refused.len(),
        refused.len(),
        replayed
    );
    for (i, (&file, id)) in applied.iter().enumerate() {
        let port = ports[i % 2];
        let r = get(
            port,
            &format!("/api/v1/uploads/{id}"),
            &[("Authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
        )
        .unwrap();
        assert_eq!(r.status, 200, "report of upload {file}: {}", r.text());
        let report = r.json();
        assert_eq!(report["file_id"], files[file].file_id.as_str());
        assert_eq!(report["file_outcome"], "CPF02", "{report}");
        let rows: Vec<(String, String)> = report["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["nhs_number"].as_str().unwrap().to_owned(),
                    r["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = files[file]
            .children
            .iter()
            .map(|n| (n.clone(), "CPR06".to_owned()))
            .collect();
        assert_eq!(rows, expected, "report rows of upload {file}");
    }
    // The records are there, each once, as sent.
    let store = cpis_store::open(&url).unwrap();
    for &file in applied.keys() {
        for (j, nhs) in files[file].children.iter().enumerate() {
            let records = store
                .records_for(cpis_domain::NhsNumber::parse(nhs).unwrap())
                .unwrap();
            assert_eq!(records.len(), 1, "upload {file}: {nhs}");
            assert_eq!(records[0].la, coventry);
            assert_eq!(
                records[0].local_id.as_deref(),
                Some(format!("{}-{j}", files[file].file_id).as_str())
            );
        }
    }
    assert_eq!(
        store.la_record_count(&coventry).unwrap(),
        coventry_records_before + 2 * applied.len() as u64,
        "Coventry holds exactly the records of the applied uploads"
    );
    drop(store);

    // Lookups: every one that showed a flag has its notification for each LA it showed; a lookup
    // refused with 503 may have committed just before the connection went, no more.
    let mut acknowledged: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut unacknowledged: BTreeMap<(String, String), usize> = BTreeMap::new();
    for x in &journal {
        if let (Ask::Lookup { nhs, org }, Ok(r)) = (&x.ask, &x.reply) {
            if r.status == 200 {
                let las = flagged_las(r);
                let notified: usize = r
                    .header("cpis-notified-las")
                    .expect("cpis-notified-las")
                    .parse()
                    .unwrap();
                assert_eq!(notified, las.len(), "lookup of {nhs}: LAs notified");
                for la in las {
                    *acknowledged
                        .entry((la, nhs.clone(), org.clone()))
                        .or_default() += 1;
                }
            } else {
                *unacknowledged
                    .entry((nhs.clone(), org.clone()))
                    .or_default() += 1;
            }
        }
    }
    let notified_las: BTreeSet<&String> = acknowledged.keys().map(|(la, _, _)| la).collect();
    assert!(
        notified_las.iter().all(|la| las_of_targets.contains(*la)),
        "lookups notified only LAs that hold the children looked up: {notified_las:?}"
    );
    for la in &las_of_targets {
        let now = access_counts(b.port, la);
        let before = &baseline[la];
        let mine = acknowledged
            .keys()
            .filter(|(l, _, _)| l == la)
            .map(|(_, nhs, org)| (nhs.clone(), org.clone()));
        let keys: BTreeSet<(String, String)> = now
            .keys()
            .chain(before.keys())
            .cloned()
            .chain(mine)
            .collect();
        for key in keys {
            let got = now.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0);
            let acked = acknowledged
                .get(&(la.clone(), key.0.clone(), key.1.clone()))
                .copied()
                .unwrap_or(0);
            let maybe = unacknowledged.get(&key).copied().unwrap_or(0);
            assert!(
                acked <= got && got <= acked + maybe,
                "{la}: lookups of {} by {}: {acked} acknowledged, {maybe} refused, {got} notifications",
                key.0,
                key.1
            );
        }
    }
    println!(
        "lookups: {} acknowledged notifications all present; {} lookups refused with 503",
        acknowledged.values().sum::<usize>(),
        unacknowledged.values().sum::<usize>()
    );
    println!("PostgreSQL restart test took {:?}", started.elapsed());
    drop(a);
    drop(b);
    drop(cluster);
}

// ---------------------------------------------------------------------------------------------
// SQLite volume full.

/// A small tmpfs mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("cpis-faults-volume-")
            .tempdir()
            .unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                println!(
                    "faults: skipped: cannot mount tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("faults: skipped: cannot mount tmpfs ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes `path` until the file system has no room left; returns its length.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::StorageFull,
                "filling the volume: {e}"
            );
            break;
        }
    }
    drop(f);
    std::fs::metadata(path).unwrap().len()
}

/// Waits (up to 30 s) until the server's lookup log holds nothing waiting to be copied in:
/// every entry written has been copied (`/metrics`).
fn wait_lookup_log_copied_in(port: u16) {
    let counter = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(port, "/metrics", &[("Accept", "text/plain")]).unwrap();
        let text = r.text();
        let written = counter(&text, "cpis_lookup_spool_entries_written_total ");
        let copied = counter(&text, "cpis_lookup_spool_entries_copied_total ");
        if written.is_some() && written == copied {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "lookups still waiting in the lookup log: written {written:?}, copied {copied:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

#[test]
fn sqlite_volume_full() {
    let started = Instant::now();
    let Some(volume) = Tmpfs::mount(16) else {
        return;
    };
    let db = volume.path().join("cpis.db");
    let url = format!("sqlite://{}", db.display());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cpis.toml");
    std::fs::write(&config, HIGH_ANOMALY_LIMITS).unwrap();
    cpis_ok(&url, &["demo", "load"]);
    let mut server = Server::start(&url, &config, dir.path(), "sqlite");
    assert!(
        Path::new(&format!("{}.spool", db.display())).is_dir(),
        "the spool directory is beside the database, on the same volume"
    );
    let port = server.port;
    // Children only Coventry holds: each lookup that shows a flag notifies Coventry alone.
    let held = uploaded_children(false);
    let targets: Vec<String> = flagged_children(usize::MAX)
        .into_iter()
        .filter(|n| held[n].len() == 1 && held[n].contains(COVENTRY))
        .take(12)
        .collect();
    assert_eq!(targets.len(), 12, "enough Coventry-only children");
    let children = new_children(303);
    let small = upload_file("full-small", &children[..2]);
    let big = upload_file("full-big", &children[2..302]);
    let warm = upload_file("full-warm", &children[302..]);
    let coventry_notes_before = all_notifications(port, COVENTRY).len();
    let mut acknowledged: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut lookup_once = |nhs: &str, may_fail: bool| -> u16 {
        let r = lookup(port, ED_TOKEN, nhs).expect("a lookup answers");
        match r.status {
            200 => {
                if flagged_las(&r).contains(COVENTRY) {
                    *acknowledged.entry(nhs.to_owned()).or_default() += 1;
                }
            }
            503 if may_fail => {
                assert_fhir_unavailable(&r, &format!("lookup of {nhs} on a full volume"));
                *refused.entry(nhs.to_owned()).or_default() += 1;
            }
            s => panic!("lookup of {nhs}: {s} {}", r.text()),
        }
        r.status
    };

    // Working disk first.
    assert_eq!(lookup_once(&targets[0], false), 200);
    let r = upload(port, &warm).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());

    // (a) Not a byte left: the upload body cannot even be spooled, and is refused as temporarily
    // unavailable. A lookup is answered if the lookup log's preallocated zeros take its frame
    // (durable there, copied in and notified once there is room: checked at the end), refused
    // (503) otherwise. Reads still answer.
    let filler = volume.path().join("filler");
    let filled = fill(&filler);
    println!(
        "volume full: filler {filled} bytes, {} bytes free",
        free_bytes(volume.path())
    );
    let r = upload(port, &small).unwrap();
    assert_api_unavailable(&r, "upload on a full volume");
    lookup_once(&targets[1], true);
    let r = get(
        port,
        "/api/v1/notifications",
        &[("Authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
    )
    .unwrap();
    assert_eq!(r.status, 200, "reads answer on a full volume: {}", r.text());
    let r = get(port, "/readyz", &[]).unwrap();
    assert_eq!(r.status, 200, "/readyz on a full volume: {}", r.text());
    server.assert_up();

    // (b) A little room: a 300-row upload spools but cannot be written whole. It is refused
    // (CPF05), leaves no report and no rows; lookups either record everything or answer 503.
    // Lookups answered in (a) are copied in as soon as there is room and take some of it: once
    // they are in, the filler shrinks again so that the upload meets the same room every run.
    let room = 48 * 1024;
    let filler_file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    filler_file.set_len(filled - room).unwrap();
    wait_lookup_log_copied_in(port);
    let taken = room.saturating_sub(free_bytes(volume.path()));
    filler_file.set_len(filled - room - taken).unwrap();
    // Closed, so that removing the filler below frees its room.
    drop(filler_file);
    println!("a little room: {} bytes free", free_bytes(volume.path()));
    let r = upload(port, &big).unwrap();
    assert_api_unavailable(&r, "300-row upload with little room");
    let failed = r.json();
    assert_eq!(
        failed["file_outcome"], "CPF05",
        "the engine reports CPF05: {failed}"
    );
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    let r = get(
        port,
        &format!("/api/v1/uploads/{failed_id}"),
        &[("Authorization", &format!("Bearer {COVENTRY_TOKEN}"))],
    )
    .unwrap();
    assert_eq!(
        r.status,
        404,
        "a refused upload keeps no report: {}",
        r.text()
    );
    for nhs in &targets[2..6] {
        lookup_once(nhs, true);
    }
    server.assert_up();

    // (c) Room again: without a restart, everything works.
    std::fs::remove_file(&filler).unwrap();
    {
        let store = cpis_store::open(&url).unwrap();
        for nhs in small.children.iter().chain(&big.children) {
            assert!(
                store
                    .records_for(cpis_domain::NhsNumber::parse(nhs).unwrap())
                    .unwrap()
                    .is_empty(),
                "nothing of a refused upload was applied ({nhs})"
            );
        }
    }
    for nhs in &targets[6..] {
        assert_eq!(lookup_once(nhs, false), 200, "lookup once there is room");
    }
    for file in [&small, &big] {
        let r = upload(port, file).unwrap();
        assert_eq!(r.status, 201, "{} sent again: {}", file.file_id, r.text());
        let body = r.json();
        assert_eq!(body["file_outcome"], "CPF02", "{body}");
        assert_eq!(
            body["counts"]["accepted"],
            file.children.len() as u64,
            "{body}"
        );
    }
    server.assert_up();

    // Every acknowledged lookup has its notification; a refused one may have none.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in &all_notifications(port, COVENTRY)[coventry_notes_before..] {
        assert_eq!(n["kind"], "access", "{n}");
        assert_eq!(n["access"]["organisation"]["ods_code"], org_of(ED_TOKEN));
        let nhs = n["child"]["nhs_number"].as_str().unwrap().to_owned();
        *counts.entry(nhs).or_default() += 1;
    }
    for nhs in acknowledged
        .keys()
        .chain(refused.keys())
        .chain(counts.keys())
    {
        let got = counts.get(nhs).copied().unwrap_or(0);
        let acked = acknowledged.get(nhs).copied().unwrap_or(0);
        let maybe = refused.get(nhs).copied().unwrap_or(0);
        assert!(
            acked <= got && got <= acked + maybe,
            "lookups of {nhs}: {acked} acknowledged, {maybe} refused, {got} notifications"
        );
    }
    println!(
        "lookups: {} acknowledged (all notified), {} refused with 503",
        acknowledged.values().sum::<usize>(),
        refused.values().sum::<usize>()
    );

    // The database is whole: the audit chain verifies and SQLite finds nothing wrong.
    let verify = cpis_ok(&url, &["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);
    server.assert_up();
    drop(server);
    println!("SQLite volume-full test took {:?}", started.elapsed());
    drop(volume);
}
