//! SIGKILL during an upload: after a restart the upload is either wholly applied or not applied
//! at all, the database is intact, and resubmitting the file completes it.

use cpis_domain::NhsNumber;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROWS: usize = 40_000;
const LA: &str = "E08000026";

/// The system temporary directory the children see: no spool file may ever land there.
fn tmpdir(db: &Path) -> std::path::PathBuf {
    db.with_file_name("tmp")
}

fn cpis(db: &Path) -> Command {
    let tmp = tmpdir(db);
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpis"));
    c.arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .env("TMPDIR", tmp)
        .env_remove("CPIS_CONFIG");
    c
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn state(db: &Path) -> (i64, i64, String) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let records: i64 = conn
        .query_row(
            "SELECT count(*) FROM records WHERE la_ods = ?1",
            [LA],
            |r| r.get(0),
        )
        .unwrap();
    let uploads: i64 = conn
        .query_row(
            "SELECT count(*) FROM uploads WHERE la_ods = ?1",
            [LA],
            |r| r.get(0),
        )
        .unwrap();
    (records, uploads, integrity)
}

#[test]
fn killing_an_upload_leaves_it_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let las = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/local_authorities.csv");
    assert!(cpis(&db)
        .args(["directory", "load", "--local-authorities"])
        .arg(&las)
        .status()
        .unwrap()
        .success());

    let mut demographics =
        String::from("nhs_number,status,superseded_by,date_of_birth,sensitive\n");
    let mut upload = String::from("action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive\n");
    for (i, n) in (700_000_000u32..)
        .filter_map(NhsNumber::from_prefix)
        .take(ROWS)
        .enumerate()
    {
        let dob = format!("2015-{:02}-{:02}", i % 12 + 1, i % 28 + 1);
        writeln!(demographics, "{n},active,,{dob},false").unwrap();
        writeln!(
            upload,
            "upsert,{n},L{i},Given,Family,{dob},CPP,2025-06-01,,,false"
        )
        .unwrap();
    }
    let demo_path = dir.path().join("demographics.csv");
    let upload_path = dir.path().join("upload.csv");
    std::fs::write(&demo_path, demographics).unwrap();
    std::fs::write(&upload_path, upload).unwrap();
    assert!(cpis(&db)
        .args(["demographics", "load"])
        .arg(&demo_path)
        .status()
        .unwrap()
        .success());

    let mut killed_mid_flight = 0;
    let mut left_by_kills = 0;
    let mut delay_ms = 40.0;
    let mut completed = false;
    for _attempt in 0..14 {
        let mut child = cpis(&db)
            .args([
                "upload",
                "--la",
                LA,
                "--file-id",
                "big-1",
                "--file-date",
                "2026-11-20",
            ])
            .arg(&upload_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms as u64));
        let running = child.try_wait().unwrap().is_none();
        child.kill().ok(); // SIGKILL
        let status = child.wait().unwrap();
        let (records, uploads, integrity) = state(&db);
        assert_eq!(integrity, "ok");
        if running {
            killed_mid_flight += 1;
        }
        left_by_kills += files_in(&db.with_file_name("crash.db.spool"));
        match records {
            0 => assert_eq!(uploads, 0, "a rolled-back upload leaves no report behind"),
            n if n == ROWS as i64 => {
                assert_eq!(uploads, 1, "an applied upload has exactly one report");
                completed = true;
                assert!(!running || status.code().is_none());
                break;
            }
            n => {
                panic!("half-applied upload: {n} of {ROWS} records after SIGKILL at {delay_ms} ms")
            }
        }
        delay_ms *= 1.6;
    }
    assert!(
        killed_mid_flight >= 3,
        "the harness killed only {killed_mid_flight} running uploads"
    );

    println!("spool files seen after kills (swept by the next run): {left_by_kills}");
    // Resubmitting after the crashes applies the file (or replays it if the last run committed).
    let out = cpis(&db)
        .args([
            "upload",
            "--la",
            LA,
            "--file-id",
            "big-1",
            "--file-date",
            "2026-11-20",
        ])
        .arg(&upload_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (records, uploads, integrity) = state(&db);
    assert_eq!(
        (records, uploads, integrity.as_str()),
        (ROWS as i64, if completed { 2 } else { 1 }, "ok")
    );
    // No personal data left on disk: the last run swept what the killed ones left, and nothing
    // ever went to the shared temporary directory.
    let spool = db.with_file_name("crash.db.spool");
    assert!(spool.is_dir(), "uploads spool beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the spool folder is private");
    }
    assert_eq!(files_in(&spool), 0, "spool files survived");
    assert_eq!(files_in(&tmpdir(&db)), 0, "files left in TMPDIR");
}
