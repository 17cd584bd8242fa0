//! `cpis backup` while the database is in use, and restoring by opening the copy.

use std::path::Path;
use std::process::{Command, Output};

fn cpis(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpis"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env_remove("CPIS_CONFIG")
        .output()
        .expect("run cpis")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_backup_restores_to_the_same_register_and_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let copy = dir.path().join("backup.db");
    ok(cpis(&db, &["demo", "load"]));
    ok(cpis(&db, &["lookup", "9990597634"]));
    let text = ok(cpis(&db, &["backup", copy.to_str().unwrap()]));
    assert!(text.contains("backed up to"), "{text}");

    // Work after the backup is not in it.
    ok(cpis(&db, &["lookup", "9990597634"]));

    // Restore = run cpis on the copy: same records, an intact audit trail one lookup shorter.
    let live_lookup = ok(cpis(&copy, &["lookup", "9990597634", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&live_lookup).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    let verify_copy = ok(cpis(&copy, &["audit", "verify"]));
    let verify_live = ok(cpis(&db, &["audit", "verify"]));
    let entries = |s: &str| -> u64 { s.split_whitespace().find_map(|w| w.parse().ok()).unwrap() };
    assert!(verify_copy.contains("intact") && verify_live.contains("intact"));
    // The live trail has the second and third lookups; the copy (restored) has the first plus
    // its own check lookup.
    assert_eq!(entries(&verify_live), entries(&verify_copy));

    // Refuses to overwrite.
    let again = cpis(&db, &["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success());
}
