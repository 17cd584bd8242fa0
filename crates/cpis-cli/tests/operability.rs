//! What an operator runs cpis with (docs/LOGGING.md, docs/OPERATIONS.md): log lines without
//! colour when standard error is not a terminal; `--log-format json` writing one JSON object a
//! line, request lines with their trace ids; `/metrics` in both the OpenMetrics and the
//! Prometheus text format, checked with `promtool check metrics`, with the example alert rules
//! (`promtool check rules`) and Grafana dashboard naming only metrics cpis serves; a SQLite path
//! in a folder that does not exist refused by name.
//!
//! promtool comes with the Debian package `prometheus` (CI installs it). Without it the
//! promtool checks are skipped and say so, unless `CI` is set, when they fail.

mod support;

use support::process::cpis_sqlite;
use support::process::stop;

use std::io::{Read, Write};
use support::http::{free_port, http, Reply};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `promtool`, or `None` (the test says it skipped) when it is not installed and `CI` is unset.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "CI is set but promtool is not installed (Debian package prometheus; .ci/run installs it)"
        );
        eprintln!("skipped: promtool checks (install the Debian package prometheus for promtool)");
    }
    found
}

/// Runs `promtool args…` with `input` on standard input: (success, stdout + stderr).
fn run_promtool(promtool: &Path, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn log_lines_written_to_a_pipe_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    // `output()` pipes standard error: not a terminal.
    let out = cpis_sqlite(&dir.path().join("c.db"))
        .arg("migrate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("applied database migration"), "{err}");
    assert!(
        !err.contains("\u{1b}["),
        "escape sequences in a pipe: {err:?}"
    );
}

#[test]
fn a_sqlite_path_in_a_missing_folder_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("no/such/dir");
    let db = folder.join("cpis.db");
    let expected = format!("folder {} does not exist", folder.display());
    let out = cpis_sqlite(&db).arg("migrate").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "migrate succeeded: {err}");
    assert!(err.contains(&expected), "{err}");
    assert!(!err.contains("temporarily unavailable"), "{err}");

    // serve may create a database, but not the folders it would live in (nor the spool folder
    // beside it).
    let mut child = cpis_sqlite(&db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            stop(child);
            panic!("serve started with a database in a missing folder");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains(&expected), "{err}");
    assert!(!err.contains("temporarily unavailable"), "{err}");
    assert!(!dir.path().join("no").exists(), "serve made the folder");
}

/// The metric families a Prometheus text exposition declares (`# TYPE name …`), with the
/// sample names of histograms (`_bucket`, `_sum`, `_count`) as their family.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `cpis_…` metric name an expression file mentions, histogram suffixes taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("cpis_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(base.to_owned());
    }
    out
}

#[test]
fn json_logs_and_metrics_of_a_demo_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let port = free_port();
    let log_path = dir.path().join("stderr.log");
    let child = cpis_sqlite(&db)
        .args(["--log-format", "json", "serve", "--demo", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let started = Instant::now();
    loop {
        if http(port, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server not ready after 120 s:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let run = || -> std::io::Result<(Reply, Reply, String)> {
        let lookup =
            "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990597634";
        let r = http(
            port,
            "GET",
            lookup,
            &[
                ("Authorization", "Bearer demo-RDEMO01"),
                ("IsUnscheduledAccessEvent", "true"),
                ("TraceID", "ops-trace-1"),
            ],
            b"",
        )?;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = http(
            port,
            "GET",
            lookup,
            &[("Authorization", "Bearer demo-RDEMO01")],
            b"",
        )?;
        assert_eq!(r.status, 200, "{}", r.text());
        let file = std::fs::read(root().join("demo/uploads/errors-E08000026.csv")).unwrap();
        let r = http(
            port,
            "POST",
            "/api/v1/uploads?file_id=ops-metrics-1",
            &[
                ("Authorization", "Bearer demo-E08000026"),
                ("Content-Type", "text/csv"),
            ],
            &file,
        )?;
        assert_eq!(r.status, 201, "{}", r.text());
        let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let id = report["id"].as_str().unwrap().to_owned();
        let r = http(
            port,
            "GET",
            &format!("/api/v1/uploads/{id}"),
            &[("Authorization", "Bearer demo-E08000026")],
            b"",
        )?;
        assert_eq!(r.status, 200);
        assert_eq!(
            http(port, "GET", "/no-such-page-9990597634", &[], b"")?.status,
            404
        );
        let openmetrics = http(port, "GET", "/metrics", &[], b"")?;
        let text = http(
            port,
            "GET",
            "/metrics",
            &[("Accept", "text/plain; version=0.0.4")],
            b"",
        )?;
        Ok((openmetrics, text, id))
    };
    let result = run();
    stop(child);
    let log = read_log();
    let (openmetrics, text, upload_id) =
        result.unwrap_or_else(|e| panic!("request failed: {e}\n{log}"));

    // Logs: every line one JSON object; request lines carry their trace id.
    let mut requests = 0;
    let mut traced = false;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}\n{log}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "request" {
            requests += 1;
            let trace = v["trace_id"].as_str().unwrap_or_default();
            assert!(!trace.is_empty(), "request line without a trace id: {line}");
            assert!(v["route"].is_string() && v["status"].is_u64(), "{line}");
            traced |= trace == "ops-trace-1";
        }
        if let Some(span) = v.get("span") {
            assert!(
                span["trace_id"].is_string(),
                "span without a trace id: {line}"
            );
        }
    }
    assert!(requests >= 7, "{requests} request lines:\n{log}");
    assert!(traced, "the caller's TraceID is not logged:\n{log}");
    assert!(!log.contains("\u{1b}["), "escape sequences in JSON logs");

    // Metrics: both formats, by Accept.
    assert_eq!(openmetrics.status, 200);
    assert_eq!(
        openmetrics.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (om, text) = (openmetrics.text(), text.text());
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(!text.contains("# EOF"), "{text}");
    for needle in [
        "cpis_build_info{version=\"",
        "cpis_http_requests_total{method=\"GET\",route=\"/fhir/R4/CareTeam\",status=\"200\"} 2",
        "cpis_http_requests_total{method=\"GET\",route=\"/api/v1/uploads/{id}\",status=\"200\"} 1",
        "route=\"<unmatched>\",status=\"404\"",
        "cpis_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"GET\",route=\"/fhir/R4/CareTeam\"} 2",
        "cpis_upload_rows_total{outcome=\"CPR07\"} 5",
        "cpis_upload_rows_total{outcome=\"CPR06\"} 4",
        "cpis_uploads_total{outcome=\"CPF03\"} 1",
        "cpis_outbox_pending{channel=\"webhook\"}",
        "cpis_outbox_oldest_pending_age_seconds{channel=\"mesh\"}",
        "cpis_outbox_dead_letters{channel=\"mesh\"} 0",
        "cpis_mesh_failures_total{operation=\"send\"} 0",
        "cpis_database_unavailable_errors_total 0",
        "# TYPE cpis_lookup_spool_entries_written_total counter",
        "# TYPE cpis_lookup_spool_entries_copied_total counter",
    ] {
        assert!(text.contains(needle), "text format lacks {needle:?}:\n{text}");
    }
    // Route templates only: no concrete path, id or NHS number in a label.
    for concrete in [upload_id.as_str(), "9990597634", "no-such-page"] {
        assert!(!text.contains(concrete), "{concrete:?} in the metrics");
        assert!(!om.contains(concrete), "{concrete:?} in the metrics");
    }
    // Every family has its help.
    for family in families(&text) {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP"
        );
    }

    // The dashboard and the alert rules use only metrics cpis serves.
    let served = families(&text);
    let dashboard = std::fs::read_to_string(root().join("docs/grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let alerts = std::fs::read_to_string(root().join("docs/alerts.yml")).unwrap();
    for (file, names) in [
        ("docs/grafana-dashboard.json", metric_names(&dashboard)),
        ("docs/alerts.yml", metric_names(&alerts)),
    ] {
        assert!(!names.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = names.difference(&served).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses unknown metrics {unknown:?}"
        );
    }

    let Some(promtool) = promtool() else { return };
    let (ok, said) = run_promtool(&promtool, &["check", "metrics"], &text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics (text format):\n{said}\n{text}"
    );
    // promtool reads the 0.0.4 text format: on OpenMetrics its only complaint may be that a
    // counter's samples are named `…_total` (as OpenMetrics requires) apart from its family.
    let (_, said) = run_promtool(&promtool, &["check", "metrics"], &om);
    let counters: BTreeSet<String> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .map(|n| format!("{n}_total no help text"))
        .collect();
    let other: Vec<_> = said
        .lines()
        .filter(|l| !l.trim().is_empty() && !counters.contains(l.trim()))
        .collect();
    assert!(
        other.is_empty(),
        "promtool check metrics (OpenMetrics):\n{said}"
    );
    let (ok, said) = run_promtool(&promtool, &["check", "rules", "docs/alerts.yml"], "");
    assert!(ok, "promtool check rules docs/alerts.yml:\n{said}");
}
