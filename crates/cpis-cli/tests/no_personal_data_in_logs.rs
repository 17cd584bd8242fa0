//! No personal data in ordinary logs (SPEC 4, docs/LOGGING.md): the real `cpis serve` binary at
//! `--log trace`, driven over HTTP through an upload, lookups (a hit, a miss, a malformed number),
//! logins and bad tokens, writes none of the NHS numbers, names, dates of birth, local ids, tokens
//! or passwords it handled to its log — while still logging every request.

mod support;

use support::demo_data::demo;
use support::process::cpis_sqlite;
use support::process::stop;

use std::io::Write;
use support::http::{free_port, http};

use std::process::Stdio;
use std::time::{Duration, Instant};

const SHARED_CHILD: &str = "9990597634";
const SHARED_CHILD_DOB: &str = "2013-05-31";
const MISS: &str = "9434765919";
const BAD_CHECK_DIGIT: &str = "9990597635";
const LA_TOKEN: &str = "demo-E08000026";
const ED_TOKEN: &str = "demo-RDEMO01";
const BOGUS_TOKEN: &str = "cpis_LeakCheckBogusToken0123456789abcdef";
const PASSWORD: &str = "Leak-Check Passphrase 7781";
const WRONG_PASSWORD: &str = "Wrong-Leak-Check Guess 4410";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn care_team(nhs_query_value: &str) -> String {
    format!("/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs_query_value}")
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `word` occurs in `text` as a whole word (case-sensitive).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn grouped(nhs: &str) -> Option<String> {
    (nhs.len() == 10).then(|| format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..]))
}

#[test]
fn the_server_log_at_trace_level_holds_no_personal_data_or_secrets() {
    check_log("text");
}

/// The same with `--log-format json` (what a log shipper receives).
#[test]
fn the_json_server_log_at_trace_level_holds_no_personal_data_or_secrets() {
    check_log("json");
}

fn check_log(format: &str) {
    let json = format == "json";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("logs.db");
    assert!(cpis_sqlite(&db).arg("migrate").status().unwrap().success());

    // A person with a password and a system with a fresh API token, made before the server starts.
    let mut add = cpis_sqlite(&db)
        .args([
            "users",
            "add",
            "leak.person",
            "--org",
            "E08000026",
            "--permissions",
            "la:notifications",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cpis_sqlite(&db)
        .args([
            "users",
            "add",
            "leak.system",
            "--org",
            "RDEMO01",
            "--permissions",
            "cpis:view-notify",
            "--system",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cpis_sqlite(&db)
        .args(["users", "token", "leak.system"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh_token = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("cpis_"))
        .expect("the token is printed")
        .to_owned();

    let port = free_port();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = cpis_sqlite(&db)
        .args([
            "--log",
            "trace",
            "--log-format",
            format,
            "serve",
            "--demo",
            "--bind",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let started = Instant::now();
    loop {
        if let Ok(r) = http(port, "GET", "/readyz", &[], b"") {
            if r.status == 200 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server not ready after 120 s:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let run = || -> std::io::Result<()> {
        // An upload with every outcome code.
        let file = std::fs::read(demo("uploads/errors-E08000026.csv")).unwrap();
        let r = http(
            port,
            "POST",
            "/api/v1/uploads?file_id=leak-check-1",
            &[
                ("Authorization", &bearer(LA_TOKEN)),
                ("Content-Type", "text/csv"),
                ("TraceID", "leak-check-trace-1"),
            ],
            &file,
        )?;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["file_outcome"], "CPF03");
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let r = http(
            port,
            "GET",
            &format!("/api/v1/uploads/{id}?format=csv"),
            &[("Authorization", &bearer(LA_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 200);

        // Lookups: the shared child (digits and grouped), a miss, a malformed number.
        let r = http(
            port,
            "GET",
            &care_team(SHARED_CHILD),
            &[
                ("Authorization", &bearer(ED_TOKEN)),
                ("IsUnscheduledAccessEvent", "true"),
            ],
            b"",
        )?;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["total"], 2, "found in both LAs");
        let r = http(
            port,
            "GET",
            &care_team("999%20059%207634"),
            &[("Authorization", &bearer(&fresh_token))],
            b"",
        )?;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["total"], 2);
        let r = http(
            port,
            "GET",
            &care_team(MISS),
            &[("Authorization", &bearer(ED_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["total"], 0, "a miss");
        let r = http(
            port,
            "GET",
            &care_team(BAD_CHECK_DIGIT),
            &[("Authorization", &bearer(ED_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 400);
        let r = http(
            port,
            "GET",
            &format!(
                "/fhir/R4/AuditEvent?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{SHARED_CHILD}"
            ),
            &[("Authorization", &bearer(ED_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 200);
        let r = http(
            port,
            "GET",
            "/api/v1/notifications",
            &[("Authorization", &bearer(LA_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains(SHARED_CHILD));

        // Logins: a wrong password, the right one, an unknown user.
        let login = |user: &str, pass: &str| {
            http(
                port,
                "POST",
                "/auth/login",
                &[("Content-Type", "application/json")],
                serde_json::json!({"username": user, "password": pass})
                    .to_string()
                    .as_bytes(),
            )
        };
        assert_eq!(login("leak.person", WRONG_PASSWORD)?.status, 401);
        assert_eq!(login("leak.person", PASSWORD)?.status, 200);
        assert_eq!(login("leak.nobody", PASSWORD)?.status, 401);

        // Bad bearer tokens.
        let r = http(
            port,
            "GET",
            &care_team(SHARED_CHILD),
            &[("Authorization", &bearer(BOGUS_TOKEN))],
            b"",
        )?;
        assert_eq!(r.status, 401);
        let r = http(
            port,
            "GET",
            "/api/v1/notifications",
            &[("Authorization", &format!("Bearer {BOGUS_TOKEN}.{PASSWORD}"))],
            b"",
        )?;
        assert_eq!(r.status, 401);
        Ok(())
    };
    let result = run();
    stop(child);
    let log = strip_ansi(&read_log());
    result.unwrap_or_else(|e| panic!("request failed: {e}\n{log}"));

    // The demo banner deliberately prints the documented demo credentials; everything else is
    // checked for them.
    let without_banner: String = log
        .lines()
        .filter(|l| !l.starts_with("demo mode:") && !l.contains("\"message\":\"demo mode:"))
        .collect::<Vec<_>>()
        .join("\n");

    // Not vacuous: the requests were logged, with their route templates and statuses.
    for (key, value) in [
        ("route", "\"/api/v1/uploads\""),
        ("route", "\"/api/v1/uploads/{id}\""),
        ("route", "\"/fhir/R4/CareTeam\""),
        ("route", "\"/fhir/R4/AuditEvent\""),
        ("route", "\"/auth/login\""),
        ("route", "\"/api/v1/notifications\""),
        ("status", "201"),
        ("status", "400"),
        ("status", "401"),
        ("trace_id", "\"leak-check-trace-1\""),
    ] {
        let needle = if json {
            format!("\"{key}\":{value}")
        } else {
            format!("{key}={value}")
        };
        assert!(log.contains(&needle), "log lacks {needle:?}:\n{log}");
    }
    let is_request = |l: &str| {
        if json {
            l.contains("\"message\":\"request\"")
        } else {
            l.contains(" request ")
        }
    };
    let requests = log.lines().filter(|l| is_request(l)).count();
    assert!(requests >= 12, "{requests} request lines:\n{log}");
    // Every request line carries the trace id used, generated when the caller sent none.
    let (empty, some) = if json {
        ("\"trace_id\":\"\"", "\"trace_id\":")
    } else {
        ("trace_id=\"\"", "trace_id=")
    };
    let untraced: Vec<_> = log
        .lines()
        .filter(|l| is_request(l) && (l.contains(empty) || !l.contains(some)))
        .collect();
    assert!(
        untraced.is_empty(),
        "request lines without a trace id:\n{}",
        untraced.join("\n")
    );

    // Personal data: NHS numbers (as digits and grouped), names, local ids, dates of birth.
    let mut nhs = vec![
        SHARED_CHILD.to_owned(),
        MISS.to_owned(),
        BAD_CHECK_DIGIT.to_owned(),
    ];
    let mut words = vec!["Ivy".to_owned(), "Campbell".to_owned()];
    let mut other = vec![SHARED_CHILD_DOB.to_owned(), "COV-001010".to_owned()];
    let errors = std::fs::read_to_string(demo("uploads/errors-E08000026.csv")).unwrap();
    for line in errors.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        nhs.push(f[1].replace(' ', ""));
        words.push(f[3].to_owned());
        words.push(f[4].to_owned());
        other.push(f[2].to_owned());
        other.push(f[5].to_owned());
    }
    for n in &nhs {
        assert!(
            !log.contains(n.as_str()),
            "NHS number {n} in the log:\n{log}"
        );
        if let Some(g) = grouped(n) {
            assert!(!log.contains(&g), "NHS number {g} in the log:\n{log}");
        }
    }
    for w in &words {
        assert!(!has_word(&log, w), "name {w:?} in the log:\n{log}");
    }
    for o in &other {
        assert!(!log.contains(o.as_str()), "{o:?} in the log:\n{log}");
    }
    // Secrets.
    for s in [
        fresh_token.as_str(),
        BOGUS_TOKEN,
        PASSWORD,
        WRONG_PASSWORD,
        "LeakCheckBogusToken",
    ] {
        assert!(!log.contains(s), "secret {s:?} in the log:\n{log}");
    }
    for s in [LA_TOKEN, ED_TOKEN] {
        assert!(
            !without_banner.contains(s),
            "token {s:?} in the log outside the demo banner:\n{without_banner}"
        );
    }
}
