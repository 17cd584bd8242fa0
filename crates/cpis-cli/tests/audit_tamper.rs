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

/// Deletes entry `seq` and rewrites every later entry and the head so the chain is consistent
/// again: what anyone with write access to the database (and the published algorithm) can do.
fn delete_and_rebuild(db: &Path, seq: i64) {
    use cpis_domain::{AuditActor, AuditEntry, AuditOutcome, NhsNumber};
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
    )
    .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq = ?1", [seq])
        .unwrap();
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq > ?1", [seq])
        .unwrap();
    conn.execute("UPDATE audit_log SET seq = -seq - 1 WHERE seq < 0", [])
        .unwrap();
    let rows: Vec<(i64, AuditEntry)> = conn
        .prepare(
            "SELECT seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                    trace_id, outcome, detail FROM audit_log ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| {
            let time: String = r.get(1)?;
            let nhs: Option<String> = r.get(7)?;
            let outcome: String = r.get(9)?;
            Ok((
                r.get(0)?,
                AuditEntry {
                    time: chrono::DateTime::parse_from_rfc3339(&time)
                        .unwrap()
                        .with_timezone(&chrono::Utc),
                    actor: AuditActor {
                        id: r.get(2)?,
                        name: r.get(3)?,
                        organisation: r.get(4)?,
                        role: r.get(5)?,
                    },
                    action: r.get(6)?,
                    subject_nhs: nhs.map(|n| NhsNumber::parse(&n).unwrap()),
                    trace_id: r.get(8)?,
                    outcome: AuditOutcome::from_code(&outcome).unwrap(),
                    detail: r.get(10)?,
                },
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = cpis_store::audit_chain::GENESIS.to_owned();
    for (s, e) in &rows {
        let hash = cpis_store::audit_chain::entry_hash(&prev, *s as u64, e);
        conn.execute(
            "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, s],
        )
        .unwrap();
        prev = hash;
    }
    let last = rows.last().unwrap().0;
    conn.execute(
        "UPDATE audit_head SET seq = ?1, hash = ?2",
        rusqlite::params![last, prev],
    )
    .unwrap();
}

#[test]
fn a_rebuilt_chain_passes_alone_but_not_against_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = trail(dir.path());
    let key = dir.path().join("checkpoint.key");
    std::fs::write(&key, [42u8; 32]).unwrap();
    let checkpoints = dir.path().join("checkpoints.jsonl");
    let key_arg = key.to_str().unwrap();
    let out_arg = checkpoints.to_str().unwrap();
    let checkpoint = |db: &Path| {
        let out = cpis(
            db,
            &[
                "audit",
                "checkpoint",
                "--key-file",
                key_arg,
                "--out",
                out_arg,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let verify_cp = |db: &Path| {
        let out = cpis(
            db,
            &[
                "audit",
                "verify",
                "--checkpoint",
                out_arg,
                "--key-file",
                key_arg,
            ],
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    checkpoint(&db);
    // More happens after the first checkpoint; a second one is appended.
    assert!(cpis(&db, &["lookup", "9990597634"]).status.success());
    checkpoint(&db);
    let (ok, text) = verify_cp(&db);
    assert!(ok, "{text}");
    assert!(text.contains("checkpoints held: 2"), "{text}");

    // Someone with database access deletes entry 3 and rebuilds the chain.
    let rebuilt = tampered(&db, "rebuilt", "SELECT 1;");
    delete_and_rebuild(&rebuilt, 3);
    let (ok, text) = verify(&rebuilt);
    assert!(ok, "the rebuilt chain is consistent in itself: {text}");
    let (ok, text) = verify_cp(&rebuilt);
    assert!(!ok, "rebuilt chain passed its checkpoints: {text}");
    assert!(
        text.contains("diverges") || text.contains("behind"),
        "{text}"
    );

    // A database restored from before the newest checkpoint is behind it.
    let cut = tampered(
        &db,
        "cut",
        "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log);
         UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_log),
                               hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1);",
    );
    assert!(verify(&cut).0, "cut back consistently");
    let (ok, text) = verify_cp(&cut);
    assert!(!ok && text.contains("behind"), "{text}");

    // A checkpoint signed with another key, or edited, is refused.
    let forged = dir.path().join("forged.jsonl");
    let edited =
        std::fs::read_to_string(&checkpoints)
            .unwrap()
            .replacen("\"seq\":", "\"seq\":1", 1);
    std::fs::write(&forged, edited).unwrap();
    let out = cpis(
        &db,
        &[
            "audit",
            "verify",
            "--checkpoint",
            forged.to_str().unwrap(),
            "--key-file",
            key_arg,
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A short key is refused with a clear error.
    std::fs::write(&key, b"short").unwrap();
    let out = cpis(
        &db,
        &[
            "audit",
            "checkpoint",
            "--key-file",
            key_arg,
            "--out",
            out_arg,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 bytes"));
}
