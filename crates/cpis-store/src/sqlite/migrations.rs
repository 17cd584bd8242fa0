//! Schema migrations for SQLite, embedded in the binary and applied in order at open. The
//! version lives in `PRAGMA user_version`; each migration runs in its own transaction.

use crate::StoreResult;
use rusqlite::Connection;

const MIGRATIONS: &[(&str, &str)] = crate::sql::migrations!("sqlite");

pub fn current_version(conn: &Connection) -> StoreResult<u32> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

pub fn run(conn: &mut Connection) -> StoreResult<()> {
    let have = current_version(conn)? as usize;
    crate::sql::check_schema(have, MIGRATIONS.len())?;
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
