//! Test support for cpis's integration tests against a real database, on either backend (a
//! dev-dependency only: nothing here is in the `cpis` binary). It reaches the database behind the
//! store's back ([`execute_batch`], [`tamper_with_audit_log`]) and finds what a stopped worker
//! must not leave behind ([`held_leases`]); with `Store::audit_verify` these are the checks a test
//! harness runs when a test ends.

use chrono::{DateTime, SecondsFormat, Utc};
use cpis_store::{StoreError, StoreResult};

/// Runs `f` on a plain thread of its own and waits for it: for work that must not run on an
/// async test's thread (opening or dropping a PostgreSQL store blocks on a runtime of its own).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Runs SQL statements (no parameters) in one transaction on the database `url` names (a
/// `postgres://` URL or a SQLite path): for tests that tamper with what the store wrote, or make
/// it fail.
pub fn execute_batch(url: &str, sql: &str) -> StoreResult<()> {
    let sql = format!("BEGIN;\n{sql};\nCOMMIT;");
    off_runtime(|| match cpis_store::sqlite_path(url)? {
        Some(path) => rusqlite::Connection::open(path)
            .and_then(|c| c.execute_batch(&sql))
            .map_err(backend),
        None => postgres::Client::connect(url, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&sql))
            .map_err(backend),
    })
}

/// Runs `sql` on the database `url` names past the audit log's append-only guard (its triggers
/// are dropped first, in the same transaction): what someone with direct database access could
/// do, for tests that the chain's verification finds it.
pub fn tamper_with_audit_log(url: &str, sql: &str) -> StoreResult<()> {
    let unguard = if cpis_store::sqlite_path(url)?.is_some() {
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;"
    } else {
        "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
         DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log;"
    };
    execute_batch(url, &format!("{unguard}\n{sql}"))
}

/// The outbox rows (webhook deliveries, MESH messages) a worker claimed and never settled, whose
/// lease still runs at `now`: what a stopped worker must not leave behind.
///
/// A claim leases a row by moving its `next_attempt_at` forward to the end of the lease without
/// counting an attempt; every outcome counts one (or ends the row). A row is queued with
/// `next_attempt_at = created_at`, so a row still pending with no attempt counted and a
/// `next_attempt_at` after its creation was claimed and never settled. (A claim after a failed
/// attempt cannot be told from the retry wait by the stored columns, so only first claims are
/// found.)
pub fn held_leases(url: &str, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
    let queries = [
        ("webhook delivery", "deliveries", "delivered_at"),
        ("MESH message", "mesh_outbox", "sent_at"),
    ]
    .map(|(channel, table, done)| {
        let sql = format!(
            "SELECT id, next_attempt_at FROM {table}
             WHERE {done} IS NULL AND dead_at IS NULL AND attempts = 0
               AND next_attempt_at > created_at AND next_attempt_at > $1 ORDER BY id"
        );
        (channel, sql)
    });
    off_runtime(|| {
        let mut held = Vec::new();
        match cpis_store::sqlite_path(url)? {
            Some(path) => {
                // SQLite holds times as the store writes them: RFC 3339, microseconds, `Z`.
                let now = now.to_rfc3339_opts(SecondsFormat::Micros, true);
                let conn = rusqlite::Connection::open(path).map_err(backend)?;
                for (channel, sql) in &queries {
                    let mut stmt = conn.prepare(&sql.replace("$1", "?1")).map_err(backend)?;
                    let rows = stmt
                        .query_map([&now], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                        })
                        .map_err(backend)?;
                    for row in rows {
                        let (id, until) = row.map_err(backend)?;
                        held.push(format!("{channel} {id} leased until {until}"));
                    }
                }
            }
            None => {
                let mut client =
                    postgres::Client::connect(url, postgres::NoTls).map_err(backend)?;
                for (channel, sql) in &queries {
                    for r in client.query(sql.as_str(), &[&now]).map_err(backend)? {
                        let id: i64 = r.get(0);
                        let until: DateTime<Utc> = r.get(1);
                        held.push(format!("{channel} {id} leased until {until}"));
                    }
                }
            }
        }
        Ok(held)
    })
}

/// What a finished test must not leave: a broken audit chain, or an outbox row (webhook
/// delivery, MESH message) a worker claimed and never settled whose lease still runs at `now`.
/// Empty when all is well; the test harnesses fail the test with these lines otherwise.
pub fn end_of_test_problems(
    store: &dyn cpis_store::Store,
    url: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match store.audit_verify() {
        Ok(cpis_store::AuditVerification::Intact { .. }) => {}
        Ok(cpis_store::AuditVerification::Broken { seq, problem }) => {
            problems.push(format!("audit chain broken at entry {seq}: {problem}"))
        }
        Err(e) => problems.push(format!("audit chain could not be verified: {e}")),
    }
    match held_leases(url, now) {
        Ok(held) => problems.extend(
            held.into_iter()
                .map(|h| format!("outbox lease still held: {h}")),
        ),
        Err(e) => problems.push(format!("outbox leases could not be checked: {e}")),
    }
    problems
}
