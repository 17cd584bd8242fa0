//! Throwaway databases for tests and benchmarks against a real PostgreSQL server.

use super::BYTEWISE;
use crate::{StoreError, StoreResult};
use postgres::NoTls;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A new, empty, uniquely named database (`cpis_test_…`), created through a URL with the right to
/// create databases and dropped — with any connection still open to it — when this value is
/// dropped, also when a test panics.
pub struct TempDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TempDatabase {
    pub fn create(admin_url: &str) -> StoreResult<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "cpis_test_{}_{:x}_{}",
            std::process::id(),
            nanos & 0xffff_ffff_ffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(admin_url, &name)?;
        admin(admin_url, &format!("CREATE DATABASE \"{name}\" {BYTEWISE}"))?;
        Ok(TempDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin_url, &sql) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Runs one statement on the admin connection, on a plain thread (the synchronous client must
/// not run inside an async context).
fn admin(url: &str, sql: &str) -> StoreResult<()> {
    let config = postgres::Config::from_str(url)
        .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
    let sql = sql.to_owned();
    std::thread::spawn(move || -> StoreResult<()> {
        let mut client = config.connect(NoTls)?;
        client.batch_execute(&sql)?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(StoreError::Backend("admin connection panicked".into())))
}

/// The same server URL naming another database.
pub fn with_database(url: &str, dbname: &str) -> StoreResult<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        // key=value form: a later key wins.
        return Ok(format!("{url} dbname={dbname}"));
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or("");
    let mut out = format!("{scheme}://{authority}/{dbname}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn names_another_database() {
        let w = |u| with_database(u, "x").unwrap();
        assert_eq!(
            w("postgres://pg@127.0.0.1:5432/postgres"),
            "postgres://pg@127.0.0.1:5432/x"
        );
        assert_eq!(w("postgresql://h"), "postgresql://h/x");
        assert_eq!(
            w("postgres://h/db?sslmode=disable"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(w("host=h user=u"), "host=h user=u dbname=x");
    }
}
