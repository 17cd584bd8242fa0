//! An optional read replica (a streaming-replication hot standby, or anything serving a recent
//! copy of the primary). Read-only queries made outside a transaction may go to it; every write
//! and every transaction stays on the primary (see `PgStore::open_with_replica`).
//!
//! The replica is a help, never a dependency: when it cannot be reached the read runs on the
//! primary and the replica is left alone for [`RETRY_AFTER`]; when a query on it fails, that read
//! runs again on the primary. Its connections are opened with `default_transaction_read_only`, so
//! a write sent to it by mistake fails loudly (and then runs on the primary) rather than landing
//! in the wrong database.

use super::pool::{Conn, Pool};
use crate::sql::Db;
use crate::StoreResult;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long reads skip a replica that could not be reached.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

pub struct Replica {
    pool: Pool,
    /// Set while the replica is being skipped after a connection failure.
    down_until: Mutex<Option<Instant>>,
}

impl Replica {
    pub fn new(pool: Pool) -> Self {
        Replica {
            pool,
            down_until: Mutex::new(None),
        }
    }

    fn is_down(&self) -> bool {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn mark_down(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + RETRY_AFTER);
    }

    /// Runs `f` on a replica connection. `None` when the replica is skipped or failed (the
    /// caller then runs `f` on the primary).
    pub fn try_read<T>(&self, f: &impl Fn(&mut dyn Db) -> StoreResult<T>) -> Option<T> {
        if self.is_down() {
            return None;
        }
        let mut conn = match self.pool.get() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, retry_after_s = RETRY_AFTER.as_secs(),
                    "read replica unavailable; reading from the primary");
                self.mark_down();
                return None;
            }
        };
        match f(&mut *conn) {
            Ok(v) => Some(v),
            Err(e) => {
                // A broken connection means the replica went away: skip it for a while. Other
                // failures (a query cancelled by a recovery conflict, a schema still behind)
                // concern this read only.
                if conn.is_closed() {
                    conn.discard();
                    self.mark_down();
                }
                tracing::warn!(error = %e, "read on the replica failed; reading from the primary");
                None
            }
        }
    }

    /// A connection to the replica outside the pool (the schema check at open).
    pub fn connect(&self) -> StoreResult<Conn> {
        self.pool.connect()
    }
}

/// The replica's connection settings: the URL's, made read-only for every transaction.
pub fn read_only(mut config: postgres::Config) -> postgres::Config {
    const READ_ONLY: &str = "-c default_transaction_read_only=on";
    let options = match config.get_options() {
        Some(o) if !o.trim().is_empty() => format!("{o} {READ_ONLY}"),
        _ => READ_ONLY.to_owned(),
    };
    config.options(&options);
    config
}

#[cfg(test)]
mod tests {
    use super::read_only;
    use std::str::FromStr;

    #[test]
    fn replica_connections_are_read_only() {
        let plain = postgres::Config::from_str("postgres://u@h/db").unwrap();
        assert_eq!(
            read_only(plain).get_options(),
            Some("-c default_transaction_read_only=on")
        );
        let with =
            postgres::Config::from_str("postgres://u@h/db?options=-c%20work_mem%3D64MB").unwrap();
        assert_eq!(
            read_only(with).get_options(),
            Some("-c work_mem=64MB -c default_transaction_read_only=on")
        );
    }
}
