//! Schema migrations for PostgreSQL, embedded in the binary and applied in order at open. Applied
//! versions are rows of `schema_migrations`; each migration runs in its own transaction, and the
//! whole run holds a session advisory lock, so servers starting together migrate once.

use super::pool::Conn;
use super::LOCK_MIGRATE;
use crate::{StoreError, StoreResult};

const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_lookups",
        include_str!("../../migrations/postgres/0002_lookups.sql"),
    ),
    (
        "0003_security",
        include_str!("../../migrations/postgres/0003_security.sql"),
    ),
    (
        "0004_notification_la_seq",
        include_str!("../../migrations/postgres/0004_notification_la_seq.sql"),
    ),
    (
        "0005_webhooks",
        include_str!("../../migrations/postgres/0005_webhooks.sql"),
    ),
    (
        "0006_mesh",
        include_str!("../../migrations/postgres/0006_mesh.sql"),
    ),
    (
        "0007_stale_held_uploads",
        include_str!("../../migrations/postgres/0007_stale_held_uploads.sql"),
    ),
    (
        "0008_plan_sensitive_marks",
        include_str!("../../migrations/postgres/0008_plan_sensitive_marks.sql"),
    ),
    (
        "0009_access_nhs_identity",
        include_str!("../../migrations/postgres/0009_access_nhs_identity.sql"),
    ),
    (
        "0010_nhs_identities",
        include_str!("../../migrations/postgres/0010_nhs_identities.sql"),
    ),
];

fn tracked(conn: &mut Conn) -> StoreResult<bool> {
    Ok(conn
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .try_get(0)?)
}

/// The highest migration applied (0 for an empty database).
pub fn current_version(conn: &mut Conn) -> StoreResult<u32> {
    if !tracked(conn)? {
        return Ok(0);
    }
    let v: i32 = conn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )?
        .try_get(0)?;
    Ok(v.max(0) as u32)
}

pub fn run(conn: &mut Conn) -> StoreResult<()> {
    conn.query_one(
        "SELECT pg_advisory_lock($1::int4, 0)::text",
        &[&LOCK_MIGRATE],
    )?;
    let out = apply(conn);
    let unlocked = conn.query_one(
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
    if have > MIGRATIONS.len() {
        return Err(StoreError::Config(format!(
            "database schema version {have} is newer than this cpis ({}); upgrade cpis",
            MIGRATIONS.len()
        )));
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(have) {
        let version = (i + 1) as i32;
        conn.batch("BEGIN")?;
        let applied = conn.batch(sql).and_then(|()| {
            conn.execute(
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
