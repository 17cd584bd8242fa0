//! The `cpis` binary as an operator uses it: help everywhere, loaders, uploads with reports, and
//! the same report whether a file comes through the CLI or over HTTP.

mod support;

use axum::body::Body;
use axum::http::Request;
use chrono::{TimeZone, Utc};
use cpis_core::{UploadEngine, UploadSettings};
use cpis_domain::FixedClock;
use cpis_server::ServerConfig;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use tower::ServiceExt;

fn cpis(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env_remove("CPIS_CONFIG")
        .output()
        .expect("run cpis")
}

fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo")
        .join(name)
}

#[test]
fn every_command_has_help() {
    let cmds: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["upload"],
        &["upload-confirm"],
        &["report"],
        &["demographics"],
        &["demographics", "load"],
        &["directory"],
        &["directory", "load"],
        &["demo"],
        &["demo", "load"],
        &["bench"],
        &["bench", "upload"],
        &["bench", "seed"],
        &["lookup"],
        &["users"],
        &["users", "add"],
        &["users", "list"],
        &["users", "disable"],
        &["users", "enable"],
        &["users", "password"],
        &["users", "token"],
        &["audit"],
        &["audit", "verify"],
        &["audit", "search"],
    ];
    for cmd in cmds {
        let out = Command::new(env!("CARGO_BIN_EXE_cpis"))
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd:?} --help failed");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage:"), "{cmd:?}: {text}");
    }
}

#[test]
fn loaders_refuse_a_bad_file_whole_and_say_which_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let bad = dir.path().join("demo.csv");
    std::fs::write(
        &bad,
        "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,active,,2015-01-01,false\n9434765919x,active,,2015-01-01,false\n",
    )
    .unwrap();
    let out = cpis(&db, &["demographics", "load", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    let out = cpis(
        &db,
        &[
            "directory",
            "load",
            "--care-settings",
            demo("care_settings.csv").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("loaded 50 care settings"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM demographics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "the good first line was not loaded either");
}

#[test]
fn a_care_setting_with_a_bad_phone_number_is_refused_whole_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let file = dir.path().join("settings.csv");
    std::fs::write(
        &file,
        "ods_code,name,setting_type,phone\nRX1,City ED,emergency-department,0113 496 0001\nRX2,Town ED,emergency-department,0113 496\n",
    )
    .unwrap();
    let out = cpis(
        &db,
        &[
            "directory",
            "load",
            "--care-settings",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: phone '0113 496': a UK phone number starts with 0 and has 10 or 11 digits, found 7 digits"),
        "{err}"
    );
    assert!(
        !db.exists(),
        "the file is checked before anything is opened or stored"
    );
    // Fixed, the file loads with its numbers.
    std::fs::write(
        &file,
        "ods_code,name,setting_type,phone\nRX1,City ED,emergency-department,0113 496 0001\nRX2,Town ED,emergency-department,\n",
    )
    .unwrap();
    let out = cpis(
        &db,
        &[
            "directory",
            "load",
            "--care-settings",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let phones: Vec<Option<String>> = conn
        .prepare("SELECT phone FROM care_settings ORDER BY ods_code")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(phones, [Some("0113 496 0001".to_owned()), None]);
}

#[test]
fn lookups_report_attendance_and_refuse_thresholds_below_two() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    assert!(cpis(&db, &["demo", "load"]).status.success());
    let out = cpis(&db, &["lookup", "--json", "9990597634"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["attendance"],
        serde_json::json!({ "seen_6_months": 0, "seen_30_days": 0, "organisations_30_days": 0 }),
        "an operator's silent lookup is not an attendance"
    );
    assert_eq!(v["pattern"], serde_json::Value::Null);
    let config = dir.path().join("cpis.toml");
    std::fs::write(&config, "[attendance]\norganisations_30_days = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .arg("--config")
        .arg(&config)
        .args(["lookup", "9990597634"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("attendance.organisations_30_days must be at least 2"),
        "{err}"
    );
}

#[test]
fn the_la_file_s_office_hours_are_loaded_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cpis.db");
    let las = dir.path().join("las.csv");
    let header =
        "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox,office_hours";
    let load = |content: &str| {
        std::fs::write(&las, content).unwrap();
        cpis(
            &db,
            &[
                "directory",
                "load",
                "--local-authorities",
                las.to_str().unwrap(),
            ],
        )
    };
    let hours = || -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut q = conn
            .prepare("SELECT ods_code, office_hours FROM local_authorities ORDER BY ods_code")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Line 3's hours are bad: the whole file is refused, naming the line and the fault.
    let out = load(&format!(
        "{header}\nE08000026,Coventry,01632 960000,020 7946 0000,,,Mon-Fri 08:00-18:00\n\
         E09000033,Westminster,01632 960001,020 7946 0001,,,Mon-Fri 17:00-09:00\n"
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(
        err.contains("office_hours: '17:00-09:00' closes before it opens"),
        "{err}"
    );
    if db.exists() {
        assert_eq!(hours(), [], "Coventry's good line was not loaded either");
    }
    // Good: the hours as given, and the standard hours where the column is empty.
    let out = load(&format!(
        "{header}\nE08000026,Coventry,01632 960000,020 7946 0000,,,mon-fri 08:00-18:00\n\
         E09000033,Westminster,01632 960001,020 7946 0001,,,\n"
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hours(),
        [
            ("E08000026".to_owned(), "Mon-Fri 08:00-18:00".to_owned()),
            ("E09000033".to_owned(), "Mon-Fri 09:00-17:00".to_owned()),
        ]
    );
}

#[test]
fn commands_that_read_refuse_a_missing_database_and_create_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mistyped.db");
    let upload = demo("uploads/E08000026.csv");
    for args in [
        &["lookup", "9990597634"][..],
        &["upload", upload.to_str().unwrap(), "--la", "E08000026"],
        &["purge", "--dry-run"],
        &["audit", "verify"],
        &["audit", "search"],
        &["users", "list"],
        &["webhooks", "list", "E08000026"],
    ] {
        let out = cpis(&db, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains("there is no database at"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created the database");
    }
    // A folder that does not exist is named as such, even for a command that may create.
    let out = cpis(&dir.path().join("no-such-folder/x.db"), &["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // Unknown schemes are refused by name, not taken as a file called "mysql:".
    let out = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .args([
            "--database",
            "mysql://root@127.0.0.1/cpis",
            "lookup",
            "9990597634",
        ])
        .current_dir(dir.path())
        .env_remove("CPIS_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported database scheme 'mysql'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}

#[test]
fn bench_seed_loads_that_many_records_and_writes_their_numbers_and_a_reload_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("seed.db");
    let list = dir.path().join("nhs.txt");
    let reload = dir.path().join("reload.csv");
    let out = cpis(
        &db,
        &[
            "bench",
            "seed",
            "--records",
            "1234",
            "--nhs-list",
            list.to_str().unwrap(),
            "--reload-csv",
            reload.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("seeded 1234 records for E99999999"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM records WHERE la_ods = 'E99999999'"),
        1234
    );
    assert_eq!(
        count("SELECT count(*) FROM plans p JOIN records r ON r.id = p.record_id WHERE r.la_ods = 'E99999999'"),
        1234
    );
    assert_eq!(count("SELECT count(*) FROM demographics"), 1234);
    let numbers = std::fs::read_to_string(&list).unwrap();
    let numbers: Vec<&str> = numbers.lines().collect();
    assert_eq!(numbers.len(), 1234);
    let known: i64 = conn
        .query_row(
            "SELECT count(*) FROM records WHERE nhs_number = ?1 AND la_ods = 'E99999999'",
            [numbers[1233]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(known, 1, "the listed numbers are the seeded children");
    let csv = std::fs::read_to_string(&reload).unwrap();
    assert_eq!(csv.lines().count(), 1235, "a header and one row per child");
    assert!(csv.lines().nth(1234).unwrap().contains(numbers[1233]));
}

#[test]
fn bench_seed_of_no_records_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("seed.db");
    for bad in ["0", "abc"] {
        let out = cpis(&db, &["bench", "seed", "--records", bad]);
        assert_eq!(out.status.code(), Some(2), "--records {bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--records"),
            "the error names the flag: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!db.exists(), "no database was created for a refused seed");
}

#[test]
fn upload_to_an_unknown_la_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    assert!(cpis(&db, &["migrate"]).status.success());
    let out = cpis(
        &db,
        &[
            "upload",
            demo("uploads/E08000026.csv").to_str().unwrap(),
            "--la",
            "E08000026",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the local authority directory"));
}

/// `cpis users …` as the operator `test.operator`, with `input` on standard input.
fn users(db: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .arg("users")
        .args(args)
        .env_remove("CPIS_CONFIG")
        .env("USER", "test.operator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cpis");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// (actor id, action, detail) of every audit entry, in order.
fn audit_entries(db: &Path) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT actor_id, action, detail FROM audit_log ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn users_changes_are_audited_with_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    assert!(cpis(&db, &["migrate"]).status.success());
    let ok = |args: &[&str], input: &str| {
        let out = users(&db, args, input);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let fails = |args: &[&str]| {
        let out = users(&db, args, "");
        assert!(!out.status.success(), "{args:?} should fail");
    };
    let add_person = [
        "add",
        "pat.person",
        "--org",
        "E08000026",
        "--permissions",
        "la:notifications",
        "--password-stdin",
    ];
    ok(&add_person, "a long enough password\n");
    ok(
        &[
            "add",
            "sam.system",
            "--org",
            "RDEMO01",
            "--permissions",
            "cpis:view-notify",
            "--system",
        ],
        "",
    );
    // Refused changes write nothing and are not audited.
    fails(&add_person);
    fails(&["disable", "nobody.here"]);
    fails(&["password", "nobody.here"]);
    fails(&["token", "nobody.here"]);
    ok(&["disable", "pat.person"], "");
    ok(&["enable", "pat.person"], "");
    ok(&["password", "pat.person"], "another long password\n");
    let token = ok(&["token", "sam.system", "--label", "epr"], "");
    assert!(token.trim().starts_with("cpis_"), "{token}");

    let operator = "operator:test.operator".to_owned();
    let expected = [
        (
            "admin.user.add",
            "added pat.person (user) at E08000026 with la:notifications",
        ),
        (
            "admin.user.add",
            "added sam.system (system) at RDEMO01 with cpis:view-notify",
        ),
        ("admin.user.disable", "disabled pat.person"),
        ("admin.user.enable", "enabled pat.person"),
        ("admin.user.password", "set the password of pat.person"),
        ("admin.token.issue", "issued token 'epr' for sam.system"),
    ]
    .map(|(a, d)| (operator.clone(), a.to_owned(), d.to_owned()));
    assert_eq!(audit_entries(&db), expected);

    // When the audit entry cannot be written, the change is not written either.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse_admin_audit BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
    )
    .unwrap();
    fails(&["disable", "pat.person"]);
    let disabled: bool = conn
        .query_row(
            "SELECT disabled FROM users WHERE username = 'pat.person'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!disabled, "disabled without an audit entry");
    conn.execute_batch("DROP TRIGGER refuse_admin_audit;")
        .unwrap();
    assert_eq!(audit_entries(&db), expected);

    let out = cpis(&db, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn http_report(file: &str, file_id: &str, file_date: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn cpis_store::Store> =
        Arc::new(cpis_store::sqlite::SqliteStore::open(dir.path().join("h.db")).unwrap());
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap(),
    ));
    let engine = UploadEngine::new(store, clock.clone(), UploadSettings::default());
    cpis_core::demo::load(&engine).unwrap();
    let store = engine.store().clone();
    cpis_core::demo::create_identities(store.as_ref()).unwrap();
    let app = cpis_server::Application::build(
        engine,
        clock,
        cpis_server::Settings::new(ServerConfig::default()),
    );
    let router = app.router();
    let send = |req: Request<Body>| {
        let router = router.clone();
        async move {
            let resp = router.oneshot(req).await.unwrap();
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        }
    };
    let body = send(
        Request::post(format!(
            "/api/v1/uploads?file_id={file_id}&file_date={file_date}"
        ))
        .header("authorization", "Bearer demo-E08000026")
        .header("content-type", "text/csv")
        .body(Body::from(std::fs::read(demo(file)).unwrap()))
        .unwrap(),
    )
    .await;
    let summary: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = summary["id"].as_str().unwrap();
    let csv = send(
        Request::get(format!("/api/v1/uploads/{id}?format=csv"))
            .header("authorization", "Bearer demo-E08000026")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    (summary, String::from_utf8(csv).unwrap())
}

fn cli_report(file: &str, file_id: &str, file_date: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let out = cpis(&db, &["demo", "load"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = dir.path().join("report.csv");
    let out = cpis(
        &db,
        &[
            "upload",
            demo(file).to_str().unwrap(),
            "--la",
            "E08000026",
            "--file-id",
            file_id,
            "--file-date",
            file_date,
            "--json",
            "--report-csv",
            report.to_str().unwrap(),
        ],
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "a partial upload exits 2");
    (summary, std::fs::read_to_string(report).unwrap())
}

#[tokio::test]
async fn cli_and_http_give_identical_reports() {
    let (http, http_csv) =
        http_report("uploads/errors-E08000026.csv", "same-file", "2026-11-20").await;
    let (cli, cli_csv) = tokio::task::spawn_blocking(|| {
        cli_report("uploads/errors-E08000026.csv", "same-file", "2026-11-20")
    })
    .await
    .unwrap();
    assert_eq!(http_csv, cli_csv);
    assert_eq!(http_csv.lines().count(), 16);
    for key in [
        "la",
        "file_id",
        "mode",
        "file_date",
        "format",
        "content_sha256",
        "status",
        "file_outcome",
        "message",
        "counts",
    ] {
        assert_eq!(http[key], cli[key], "{key}");
    }
    assert_eq!(cli["file_outcome"], "CPF03");
    assert_eq!(http["channel"], "api");
    assert_eq!(cli["channel"], "cli");
}

/// A `[oidc.sign_in]` section cpis cannot use stops `cpis serve` before it listens, naming the
/// section and what is wrong; nothing is served half-configured.
#[test]
fn serve_refuses_an_unusable_oidc_sign_in_section() {
    let dir = tempfile::tempdir().unwrap();
    let jwks =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cpis-server/tests/fixtures/jwt/jwks.json");
    let section = |scope: &str, token_endpoint: &str| {
        format!(
            "[oidc]\njwks_file = {jwks:?}\nissuer = \"https://idp.example\"\naudience = \"cpis\"\n\
             [oidc.sign_in]\nauthorization_endpoint = \"https://idp.example/authorize\"\n\
             token_endpoint = {token_endpoint:?}\nclient_id = \"cpis-web\"\n\
             redirect_uri = \"https://cpis.example/sign-in/oidc/callback\"\nscope = {scope:?}\n"
        )
    };
    let cases = [
        (
            section("profile", "https://idp.example/token"),
            "scope must include openid",
        ),
        (
            section("openid", "idp.example/token"),
            "token_endpoint must be an http(s) URL",
        ),
        (
            section("openid", "https://idp.example/token") + "client_sercet = \"typo\"\n",
            "client_sercet",
        ),
    ];
    for (i, (toml, expected)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("cpis-{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cpis"))
            .arg("--config")
            .arg(&config)
            .args(["--database"])
            .arg(format!("sqlite://{}", dir.path().join("cpis.db").display()))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("CPIS_OIDC_CLIENT_SECRET")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cpis");
        // A server that started anyway would run until killed: give it 20 s, then fail.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{expected}: serve started despite the bad section");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expected}: serve must not start");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// `cpis webhooks add` refuses destinations a string check let through (issue #13) and audits the
/// destination of the ones it adds: scheme, host and port, never the path.
#[test]
fn webhook_destinations_are_checked_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hooks.db");
    assert!(cpis(&db, &["demo", "load"]).status.success());
    let config = dir.path().join("cpis.toml");
    std::fs::write(
        &config,
        "[webhook_destinations]\nallow_http_loopback = true\n",
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        cpis(&db, &all)
    };
    for refused in [
        "http://127.0.0.1@169.254.169.254/latest/meta-data",
        "http://127.0.0.1.attacker.example/",
        "http://localhost:80@10.0.0.1/",
        "https://169.254.169.254/hook",
        "https://10.0.0.1/hook",
    ] {
        let out = with_config(&["webhooks", "add", "E08000026", refused]);
        assert!(!out.status.success(), "{refused} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("webhook URL refused"),
            "{refused}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = with_config(&[
        "webhooks",
        "add",
        "E08000026",
        "http://127.0.0.1:9/hook?token=receiver-secret",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = cpis(&db, &["audit", "search", "--action", "admin.webhook"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("to http://127.0.0.1:9"), "{text}");
    assert!(!text.contains("receiver-secret"), "{text}");
    assert_eq!(
        text.lines().count(),
        1,
        "one change, refusals changed nothing: {text}"
    );
}

#[test]
fn the_change_feed_command_applies_an_adoption_invalidation_and_refuses_a_bad_mother_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    assert!(cpis(&db, &["demo", "load"]).status.success());
    let header = "nhs_number,status,superseded_by,date_of_birth,sensitive,mother_nhs_number";
    // Line 3 names a mother with a bad check digit: nothing is applied, line 2 included.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!("{header}\n9990597634,invalidated-adoption,,2013-05-31,false,\n9434765919,active,,2026-11-19,false,9434765871\n"),
    )
    .unwrap();
    let out = cpis(
        &db,
        &["demographics", "apply-changes", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("mother_nhs_number"),
        "{err}"
    );
    let lookup = cpis(&db, &["lookup", "9990597634", "--json"]);
    let found: serde_json::Value = serde_json::from_slice(&lookup.stdout).unwrap();
    assert_eq!(
        found["records"].as_array().unwrap().len(),
        2,
        "nothing applied"
    );

    // The shared child (two LAs) invalidated for adoption, with the new number the feed gives.
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        format!("{header}\n9990597634,invalidated-adoption,9434765919,2013-05-31,false,\n"),
    )
    .unwrap();
    let out = cpis(
        &db,
        &[
            "demographics",
            "apply-changes",
            good.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["adoption_invalidated_with_records"], 1);
    assert_eq!(report["records_moved"], 0);
    assert_eq!(report["notifications"], 2);
    let lookup = cpis(&db, &["lookup", "9990597634", "--json"]);
    let found: serde_json::Value = serde_json::from_slice(&lookup.stdout).unwrap();
    assert!(
        found["records"].as_array().unwrap().is_empty(),
        "no longer flags"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM records WHERE nhs_number = '9990597634'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 2, "the records stay where they are");
    let payloads: Vec<String> = conn
        .prepare("SELECT payload FROM notifications WHERE kind = 'adoption-invalidation'")
        .unwrap()
        .query_map([], |r| support::stored::notification_payload(r, 0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(payloads.len(), 2);
    assert!(payloads.iter().all(|p| !p.contains("9434765919")));
}

/// A `[work_queue]` section out of bounds (or misspelt) stops `cpis serve` before it listens,
/// naming the setting.
#[test]
fn serve_refuses_a_work_queue_section_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[work_queue]\nescalation_hours = 0\n",
            "work_queue.escalation_hours must be 1 to 168",
        ),
        (
            "[work_queue]\nrepeat_window_minutes = 1441\n",
            "work_queue.repeat_window_minutes must be 0 to 1440",
        ),
        ("[work_queue]\nescalation_hour = 24\n", "escalation_hour"),
    ];
    for (i, (toml, expected)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("cpis-wq-{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cpis"))
            .arg("--config")
            .arg(&config)
            .args(["--database"])
            .arg(format!("sqlite://{}", dir.path().join("cpis.db").display()))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run cpis");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{expected}: serve started despite the bad section");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expected}: serve must not start");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}
