//! `cpis audit verify` against a database edited behind its back: every kind of tampering is
//! reported, and an untouched trail verifies.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cpis(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env_remove("CPIS_CONFIG")
        .output()
        .expect("run cpis")
}

/// A database with a real audit trail: demo uploads, identities added and tokens issued.
fn trail(dir: &Path) -> PathBuf {
    let db = dir.join("trail.db");
    assert!(cpis(&db, &["demo", "load"]).status.success());
    for name in ["alice.admin", "bob.auditor"] {
        let out = cpis(
            &db,
            &[
                "users",
                "add",
                name,
                "--org",
                "CPISOPS",
                "--permissions",
                "admin",
                "--system",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(cpis(&db, &["users", "token", name]).status.success());
    }
    assert!(cpis(&db, &["lookup", "9990597634"]).status.success());
    db
}

fn tampered(original: &Path, name: &str, sql: &str) -> PathBuf {
    let copy = original.with_file_name(format!("{name}.db"));
    // Copy through SQLite so the WAL is included.
    let src = rusqlite::Connection::open(original).unwrap();
    src.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
    copy
}

fn verify(db: &Path) -> (bool, String) {
    let out = cpis(db, &["audit", "verify"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn verify_detects_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let db = trail(dir.path());
    let (ok, text) = verify(&db);
    assert!(ok, "{text}");
    let entries: u64 = text
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("entry count");
    assert!(entries >= 10, "{text}");

    let cases = [
        ("edited", "UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3;"),
        ("edited-actor", "UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 5;"),
        ("deleted-middle", "DELETE FROM audit_log WHERE seq = 4;"),
        ("deleted-last", "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log);"),
        (
            "inserted",
            "INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                                   trace_id, outcome, detail, prev_hash, hash)
             SELECT max(seq) + 1, '2026-11-25T00:00:00.000000Z', 'intruder', 'intruder', NULL, '', 'auth.login',
                    NULL, NULL, 'success', NULL, (SELECT hash FROM audit_head), 'forged'
             FROM audit_log;
             UPDATE audit_head SET seq = seq + 1, hash = 'forged';",
        ),
        (
            "reordered",
            "UPDATE audit_log SET seq = -2 WHERE seq = 2;
             UPDATE audit_log SET seq = 2 WHERE seq = 3;
             UPDATE audit_log SET seq = 3 WHERE seq = -2;",
        ),
    ];
    for (name, sql) in cases {
        let copy = tampered(&db, name, sql);
        let (ok, text) = verify(&copy);
        assert!(!ok, "{name}: tampering not detected: {text}");
        assert!(text.contains("BROKEN"), "{name}: {text}");
    }
    // The original is untouched and still verifies.
    assert!(verify(&db).0);
}

#[test]
fn the_audit_log_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = trail(dir.path());
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert!(conn
        .execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1", [])
        .is_err());
    assert!(conn
        .execute("DELETE FROM audit_log WHERE seq = 1", [])
        .is_err());
}
