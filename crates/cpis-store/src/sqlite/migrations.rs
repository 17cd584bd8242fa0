//! Schema migrations for SQLite, embedded in the binary and applied in order at open. The
//! version lives in `PRAGMA user_version`; each migration runs in its own transaction.

use crate::{StoreError, StoreResult};
use rusqlite::Connection;

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_lookups",
        include_str!("../../migrations/sqlite/0002_lookups.sql"),
    ),
    (
        "0003_security",
        include_str!("../../migrations/sqlite/0003_security.sql"),
    ),
    (
        "0004_notification_la_seq",
        include_str!("../../migrations/sqlite/0004_notification_la_seq.sql"),
    ),
    (
        "0005_webhooks",
        include_str!("../../migrations/sqlite/0005_webhooks.sql"),
    ),
    (
        "0006_mesh",
        include_str!("../../migrations/sqlite/0006_mesh.sql"),
    ),
    (
        "0007_stale_held_uploads",
        include_str!("../../migrations/sqlite/0007_stale_held_uploads.sql"),
    ),
    (
        "0008_plan_sensitive_marks",
        include_str!("../../migrations/sqlite/0008_plan_sensitive_marks.sql"),
    ),
    (
        "0009_access_nhs_identity",
        include_str!("../../migrations/sqlite/0009_access_nhs_identity.sql"),
    ),
    (
        "0010_nhs_identities",
        include_str!("../../migrations/sqlite/0010_nhs_identities.sql"),
    ),
];

pub fn current_version(conn: &Connection) -> StoreResult<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

pub fn run(conn: &mut Connection) -> StoreResult<()> {
    let have = current_version(conn)? as usize;
    if have > MIGRATIONS.len() {
        return Err(StoreError::Config(format!(
            "database schema version {have} is newer than this cpis ({}); upgrade cpis",
            MIGRATIONS.len()
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(have) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        if current_version(&tx)? as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(migration = name, "applied database migration");
    }
    Ok(())
}
