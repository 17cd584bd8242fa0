//! Schema migrations for PostgreSQL, embedded in the binary and applied in order at open. Applied
//! versions are rows of `schema_migrations`; each migration runs in its own transaction, and the
//! whole run holds a session advisory lock, so servers starting together migrate once.

use super::pool::Conn;
use super::LOCK_MIGRATE;
use crate::sql::Db;
use crate::StoreResult;

const MIGRATIONS: &[(&str, &str)] = crate::sql::migrations!("postgres");

fn tracked(conn: &mut Conn) -> StoreResult<bool> {
    conn.one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0)
}

/// The highest migration applied (0 for an empty database).
pub fn current_version(conn: &mut Conn) -> StoreResult<u32> {
    if !tracked(conn)? {
        return Ok(0);
    }
    conn.one(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        &[],
    )?
    .get(0)
}

pub fn run(conn: &mut Conn) -> StoreResult<()> {
    conn.exec(
        "SELECT pg_advisory_lock($1::int4, 0)::text",
        &[&LOCK_MIGRATE],
    )?;
    let out = apply(conn);
    let unlocked = conn.exec(
        "SELECT pg_advisory_unlock($1::int4, 0)::text",
        &[&LOCK_MIGRATE],
    );
    out?;
    unlocked?;
    Ok(())
}

fn apply(conn: &mut Conn) -> StoreResult<()> {
    if !tracked(conn)? {
        conn.batch(
            "CREATE TABLE schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )?;
    }
    let have = current_version(conn)? as usize;
    crate::sql::check_schema(have, MIGRATIONS.len())?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(have) {
        let version = (i + 1) as i32;
        conn.batch("BEGIN")?;
        let applied = conn.batch(sql).and_then(|()| {
            conn.exec(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, name],
            )
        });
        if let Err(e) = applied.and_then(|_| conn.batch("COMMIT")) {
            let _ = conn.batch("ROLLBACK");
            return Err(e);
        }
        tracing::info!(migration = name, "applied database migration");
    }
    Ok(())
}
