//! The `cpis` binary as an operator uses it: help everywhere, loaders, uploads with reports, and
//! the same report whether a file comes through the CLI or over HTTP.

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
