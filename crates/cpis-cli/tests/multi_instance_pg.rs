//! Horizontal scale-out on PostgreSQL (SPEC 5: "several stateless cpis servers share it"): two
//! real `cpis serve` processes on one database, driven at the same time over HTTP.
//!
//! - The same upload file is sent to both servers at once, for several file ids: each file is
//!   applied exactly once (one `201`, one `200` duplicate report naming that upload, one `upload.apply`
//!   audit entry) and its records are as sent.
//! - Meanwhile ~200 notifying lookups, split across both servers and several emergency-care
//!   identities, all answer `200`; afterwards each LA's notifications, paged by cursor, have
//!   unique ids and cursors 1, 2, 3… with no gap, as many as the lookups that notified it.
//!
//! The second server runs with `--read-database` naming the same database, so its read-only
//! queries go through the replica pool.
//!
//! Runs when `CPIS_TEST_PG_URL` names a PostgreSQL server where that user may create databases
//! (a fresh `cpis_test_…` database, dropped at the end); otherwise prints "skipped" and passes,
//! unless `CPIS_REQUIRE_PG=1`.
//!
//! ```text
//! CPIS_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p cpis-cli --test multi_instance_pg
//! ```

mod support;

use support::demo_data::{emergency_tokens, new_children, uploaded_children, HIGH_ANOMALY_LIMITS};
use support::http::{free_port, http, Reply};

use cpis_domain::{NhsNumber, OdsCode};
use cpis_store::postgres::TempDatabase;
use cpis_store::{AuditQuery, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const COVENTRY: &str = "E08000026";
/// Upload files sent to both servers at once, and the rows in each.
const FILES: usize = 5;
const ROWS_PER_FILE: usize = 3;
/// Notifying lookups, spread over this many client threads.
const LOOKUPS: usize = 200;
const LOOKUP_THREADS: usize = 8;

fn admin_url() -> Option<String> {
    let url = std::env::var("CPIS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        assert!(
            !std::env::var("CPIS_REQUIRE_PG").is_ok_and(|v| v == "1"),
            "CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set"
        );
        println!(
            "multi_instance_pg skipped: set CPIS_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) \
             to run two cpis servers against one PostgreSQL database"
        );
    }
    url
}

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

/// A running `cpis serve`, killed when dropped (also when the test fails).
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(database: &str, config: &Path, dir: &Path, name: &str, extra: &[&str]) -> Server {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = cpis(database)
            .arg("--config")
            .arg(config)
            .args(["--log", "warn", "serve", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start cpis serve");
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http(port, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == 200) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "server {name} not ready on port {port}:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upload file: its id, its CSV and the (NHS number, date of birth) of each row.
type UploadFile = (String, String, Vec<(String, String)>);

/// One LA's notifications, paged through with the cursor (small pages, so paging is exercised).
fn all_notifications(port: u16, la: &str) -> Vec<Value> {
    let token = format!("Bearer demo-{la}");
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let r = http(
            port,
            "GET",
            &format!("/api/v1/notifications?after={after}&limit=37"),
            &[("Authorization", &token)],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let page = r.json();
        let items = page["notifications"].as_array().unwrap().clone();
        let next = page["next_cursor"].as_str().unwrap().to_owned();
        if items.is_empty() {
            assert_eq!(next, if after.is_empty() { "0" } else { &after });
            return out;
        }
        out.extend(items);
        after = next;
    }
}

#[test]
fn two_servers_share_one_postgresql_database() {
    let Some(admin) = admin_url() else { return };
    let db = TempDatabase::create(&admin).expect("create a test database");
    let url = db.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cpis.toml");
    std::fs::write(&config, HIGH_ANOMALY_LIMITS).unwrap();

    let out = cpis(&url)
        .args(["--log", "warn", "demo", "load"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cpis demo load: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the demo load left, read through the store (a third client of the database).
    let store: Arc<dyn Store> = Arc::from(cpis_store::open(&url).unwrap());
    let coventry = OdsCode::parse(COVENTRY).unwrap();
    let coventry_records_before = store.la_record_count(&coventry).unwrap();

    let a = Server::start(&url, &config, dir.path(), "a", &[]);
    // The second server also names a read replica — the same database, so its reads (the
    // notification lists below) see everything: exercises `--read-database` end to end.
    let b = Server::start(&url, &config, dir.path(), "b", &["--read-database", &url]);
    let ports = [a.port, b.port];

    // (a) The same new file to both servers at once, FILES times with different file ids.
    let children = new_children(FILES * ROWS_PER_FILE);
    let files: Vec<UploadFile> = children
        .chunks(ROWS_PER_FILE)
        .enumerate()
        .map(|(i, chunk)| {
            let mut csv = String::from("action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive\n");
            for (j, (nhs, dob)) in chunk.iter().enumerate() {
                csv.push_str(&format!(
                    "upsert,{nhs},COV-MI-{i}-{j},Multi,Instance,{dob},CPP,2026-10-{:02},,,false\n",
                    1 + i
                ));
            }
            (format!("multi-instance-{i}"), csv, chunk.to_vec())
        })
        .collect();
    let upload_thread = {
        let files = files.clone();
        std::thread::spawn(move || {
            let mut replies = Vec::new();
            for (file_id, csv, _) in &files {
                let barrier = Arc::new(Barrier::new(2));
                let both: Vec<_> = ports
                    .iter()
                    .map(|&port| {
                        let barrier = barrier.clone();
                        let csv = csv.clone();
                        let path = format!(
                            "/api/v1/uploads?mode=delta&file_id={file_id}&file_date=2026-11-01"
                        );
                        std::thread::spawn(move || {
                            barrier.wait();
                            http(
                                port,
                                "POST",
                                &path,
                                &[
                                    ("Authorization", "Bearer demo-E08000026"),
                                    ("Content-Type", "text/csv"),
                                ],
                                csv.as_bytes(),
                            )
                            .unwrap()
                        })
                    })
                    .collect();
                let got: Vec<Reply> = both.into_iter().map(|h| h.join().unwrap()).collect();
                replies.push((file_id.clone(), got));
            }
            replies
        })
    };

    // (b) Notifying lookups of children held by one or two LAs, across both servers.
    let held = uploaded_children(false);
    let mut targets: Vec<String> = held
        .iter()
        .filter(|(_, las)| las.len() > 1)
        .map(|(n, _)| n.clone())
        .collect();
    targets.extend(
        held.iter()
            .filter(|(_, las)| las.len() == 1 && las.contains(COVENTRY))
            .map(|(n, _)| n.clone())
            .take(30),
    );
    let tokens = emergency_tokens();
    assert!(tokens.len() >= 3, "several emergency-care identities");
    let start = Arc::new(Barrier::new(LOOKUP_THREADS));
    let lookup_threads: Vec<_> = (0..LOOKUP_THREADS)
        .map(|t| {
            let targets = targets.clone();
            let tokens = tokens.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut seen = Vec::new();
                for i in (t..LOOKUPS).step_by(LOOKUP_THREADS) {
                    let nhs = &targets[i % targets.len()];
                    let token = format!("Bearer {}", tokens[i % tokens.len()]);
                    let port = ports[i % 2];
                    let r = http(
                        port,
                        "GET",
                        &format!("/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}"),
                        &[("Authorization", &token), ("IsUnscheduledAccessEvent", "true")],
                        b"",
                    )
                    .unwrap();
                    seen.push((nhs.clone(), r));
                }
                seen
            })
        })
        .collect();

    let lookups: Vec<(String, Reply)> = lookup_threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let uploads = upload_thread.join().unwrap();

    // Every lookup answered 200; the LAs it notified are the LA Organizations in its bundle.
    assert_eq!(lookups.len(), LOOKUPS);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (nhs, r) in &lookups {
        assert_eq!(
            r.status,
            200,
            "lookup of {nhs}: {}\nserver a:\n{}\nserver b:\n{}",
            String::from_utf8_lossy(&r.body),
            a.log_text(),
            b.log_text()
        );
        let bundle = r.json();
        let las: BTreeSet<String> = bundle["entry"]
            .as_array()
            .map(|e| e.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Organization")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect();
        let notified: usize = r
            .header("cpis-notified-las")
            .expect("cpis-notified-las header")
            .parse()
            .unwrap();
        assert_eq!(notified, las.len(), "lookup of {nhs}: notified LAs");
        for la in las {
            *expected.entry(la).or_default() += 1;
        }
    }
    assert!(
        expected.len() >= 2 && expected.get(COVENTRY).copied().unwrap_or(0) > 0,
        "the lookups notified Coventry and at least one other LA: {expected:?}"
    );

    println!("notifying lookups per LA: {expected:?}");

    // Each file applied exactly once: one new upload, one replay of it.
    assert_eq!(uploads.len(), FILES);
    let applied = store
        .audit_search(&AuditQuery {
            action_prefix: Some("upload.apply".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    for (file_id, replies) in &uploads {
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 201],
            "{file_id}: one new upload and one replay: {:?}",
            replies
                .iter()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .collect::<Vec<_>>()
        );
        let body = |status: u16| {
            replies
                .iter()
                .find(|r| r.status == status)
                .map(Reply::json)
                .unwrap()
        };
        let (new, duplicate) = (body(201), body(200));
        assert_eq!(
            duplicate["duplicate_of"], new["id"],
            "{file_id}: the replay names the upload that applied it"
        );
        assert_eq!(duplicate["status"], "duplicate", "{duplicate}");
        assert_eq!(duplicate["file_id"], file_id.as_str());
        assert_eq!(new["file_id"], file_id.as_str());
        assert_eq!(new["file_outcome"], "CPF02", "{new}");
        assert_eq!(new["counts"]["accepted"], ROWS_PER_FILE as u64);
        let marker = format!("file '{file_id}'");
        let applies = applied
            .iter()
            .filter(|r| {
                r.entry
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains(&marker))
            })
            .count();
        assert_eq!(applies, 1, "{file_id}: applied once");
    }
    // The records are as sent, each held once by Coventry.
    assert_eq!(
        store.la_record_count(&coventry).unwrap(),
        coventry_records_before + (FILES * ROWS_PER_FILE) as u64
    );
    for (i, (_, _, rows)) in files.iter().enumerate() {
        for (j, (nhs, dob)) in rows.iter().enumerate() {
            let records = store.records_for(NhsNumber::parse(nhs).unwrap()).unwrap();
            assert_eq!(records.len(), 1, "{nhs}");
            let r = &records[0];
            assert_eq!(r.la, coventry);
            assert_eq!(
                r.local_id.as_deref(),
                Some(format!("COV-MI-{i}-{j}").as_str())
            );
            assert_eq!(
                r.date_of_birth.map(|d| d.to_string()).as_deref(),
                Some(dob.as_str())
            );
            assert_eq!(r.plans.len(), 1);
            assert_eq!(
                r.plans[0].start().to_string(),
                format!("2026-10-{:02}", 1 + i)
            );
        }
    }

    // Each LA's notifications: unique ids, cursors 1..N with no gap, N = the lookups that
    // notified it — read from either server.
    let mut all_ids = HashSet::new();
    for (la, &n) in &expected {
        for port in ports {
            let notes = all_notifications(port, la);
            let cursors: Vec<u64> = notes
                .iter()
                .map(|x| x["cursor"].as_str().unwrap().parse().unwrap())
                .collect();
            assert_eq!(
                cursors,
                (1..=notes.len() as u64).collect::<Vec<_>>(),
                "{la}: cursors 1..N with no gap"
            );
            let access: Vec<&Value> = notes.iter().filter(|x| x["kind"] == "access").collect();
            assert_eq!(
                access.len(),
                n,
                "{la}: one notification per notifying lookup"
            );
            let ids: HashSet<&str> = notes.iter().map(|x| x["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), notes.len(), "{la}: unique ids");
            if port == ports[0] {
                for id in ids {
                    assert!(all_ids.insert(id.to_owned()), "{id} belongs to one LA only");
                }
            }
        }
    }
    // LAs no lookup involved were not notified.
    for la in ["E09000033", "E10000016"] {
        if !expected.contains_key(la) {
            assert!(all_notifications(a.port, la).is_empty(), "{la}");
        }
    }

    drop(a);
    drop(b);
    drop(store);
    drop(db);
}

/// `cpis bench upload --database postgres://…` runs the upload benchmark in a throwaway database
/// on that server and drops it afterwards.
#[test]
fn bench_upload_runs_on_postgresql_in_a_throwaway_database() {
    let Some(admin) = admin_url() else { return };
    let out = cpis(&admin)
        .args([
            "--log",
            "warn",
            "bench",
            "upload",
            "--rows",
            "300",
            "--daily-rows",
            "40",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cpis bench upload: {stderr}");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (m, rows) in results.iter().zip([300, 300, 40]) {
        assert_eq!(m["rows"], rows, "{m}");
        assert_eq!(m["file_outcome"], "CPF02", "{m}");
    }
    let name = stderr
        .split_whitespace()
        .find(|w| w.starts_with("cpis_test_"))
        .unwrap_or_else(|| panic!("the benchmark names its database: {stderr}"));
    let (server, _) = admin
        .split_once('?')
        .map_or((admin.as_str(), ""), |(s, q)| (s, q));
    let (server, _) = server.rsplit_once('/').unwrap();
    assert!(
        cpis_store::open(&format!("{server}/{name}")).is_err(),
        "the benchmark database {name} was dropped"
    );
}
