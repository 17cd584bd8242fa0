//! The PostgreSQL backend, for production: several stateless cpis servers share one database.
//! Same tables and behaviour as the SQLite backend; what SQLite gets from its single writer,
//! PostgreSQL gets from locks:
//!
//! - an upload takes a transaction-level advisory lock keyed by its LA before anything else, so
//!   two servers never apply the same file twice for one LA (and the partial unique index on
//!   effective uploads backs that up);
//! - a transaction takes a global advisory lock before its first notification, so notification
//!   `seq`s become visible in commit order and an LA reading by cursor never skips one;
//! - an audit append locks the `audit_head` row, so the hash chain stays linear.
//!
//! Calls block (the synchronous `postgres` client); async callers run them on blocking threads.

pub(crate) mod bulk;
pub(crate) mod lookup_writes;
mod migrations;
mod pool;
mod replica;
mod testing;

pub(crate) use pool::Conn as PgConn;
pub use testing::TempDatabase;

use crate::sql::{Backend, Db, DbHandle, SqlTx};
use crate::{StoreError, StoreResult};
use pool::Pool;
use std::str::FromStr;
use std::time::Duration;

/// Most connections one store opens.
const POOL_MAX: usize = 16;
/// How long a caller waits for a free connection before the store reports itself unavailable.
const POOL_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// For the statements of a lookup group and of the lookup views, which bind arrays (`unnest`,
/// `= ANY`): with a custom plan per execution, PostgreSQL's default for them (it estimates a
/// bound array's length only when planning for its values), each execution was planned anew,
/// which cost a lone lookup about a third of its time (measured: 2.6 ms → 4.2 ms at one
/// connection). Their plans do not depend on the values, so the one generic plan serves.
const GENERIC_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Advisory lock classes (the first key of the two-key form): "cpis" and a purpose.
const LOCK_MIGRATE: i32 = 0x6370_6901;
const LOCK_UPLOAD_LA: i32 = 0x6370_6902;
const LOCK_NOTIFY: i32 = 0x6370_6903;

pub struct PgStore {
    pool: Pool,
    /// Where read-only queries made outside a transaction go, if configured.
    replica: Option<replica::Replica>,
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        classify(&e)
    }
}

/// Sorts a PostgreSQL error by what the caller can do about it.
fn classify(e: &postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{code}: {}", db.message());
        return match code.get(..2) {
            // Connection exceptions, transaction rollbacks (serialization failure, deadlock),
            // insufficient resources, operator intervention (statement/lock timeout via cancel,
            // shutdown), system errors.
            Some("08" | "40" | "53" | "57" | "58") => StoreError::unavailable(text),
            // Lock not available (lock_timeout, NOWAIT).
            Some("55") if code == "55P03" => StoreError::unavailable(text),
            Some("23") => StoreError::Constraint(text),
            _ => StoreError::Backend(text),
        };
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut io = false;
    while let Some(s) = source {
        io |= s.is::<std::io::Error>();
        text = format!("{text}: {s}");
        source = s.source();
    }
    if e.is_closed()
        || io
        || text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("error communicating")
    {
        StoreError::unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

/// How cpis creates a database for its tests and benchmarks, as docs/DEPLOYMENT.md asks of a
/// production one: UTF-8, compared byte by byte (the C locale). Keys are NHS numbers and ODS
/// codes, which sort the same either way, and the C locale spares every index probe a
/// locale-aware comparison: 4-11% off a 500k-row reload (BENCHMARKS.md, 2026-12-04).
pub const BYTEWISE: &str = "TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'";

/// Whether a locale name compares strings byte by byte.
fn bytewise(locale: &str) -> bool {
    matches!(locale, "C" | "POSIX")
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names and brings its schema up to date (once,
    /// under an advisory lock, however many servers start together).
    pub fn open(url: &str) -> StoreResult<Self> {
        let pool = Pool::new(connection_config(url)?, POOL_MAX, POOL_WAIT);
        let mut conn = pool.connect()?;
        migrations::run(&mut conn)?;
        let locale = conn.one(
            "SELECT datcollate::text, datctype::text FROM pg_database
             WHERE datname = current_database()",
            &[],
        )?;
        let (collate, ctype): (String, String) = (locale.get(0)?, locale.get(1)?);
        if !bytewise(&collate) || !bytewise(&ctype) {
            tracing::info!(
                %collate,
                %ctype,
                "the database does not use the C locale, which uploads are 4-11% faster with \
                 (docs/DEPLOYMENT.md, \"Creating the database\")"
            );
        }
        Ok(PgStore {
            pool,
            replica: None,
        })
    }

    /// As [`PgStore::open`], with a read replica (`replica_url`, e.g. a streaming-replication
    /// hot standby) for the read-only queries made outside a transaction: `records_for` and
    /// `recent_accesses` outside lookups (the AuditEvent history), an LA's notification list,
    /// upload report rows, directory and demographics reads, counts and audit search. Every
    /// write and every transaction (lookups, uploads, acknowledgements, audit verification) stays
    /// on the primary, and so do reads whose answer a write depends on (upload summaries, held
    /// files, users, tokens and sessions).
    ///
    /// A replica lags its primary: what it answers may be a moment old. Point reads that find
    /// nothing there (a record, an LA, an upload's rows) ask the primary as well, so something
    /// just written is never reported missing; lists (notifications, audit search, the access
    /// history) may trail by the replication lag. An unreachable replica is skipped and its reads
    /// go to the primary. Migrations run on the primary only; the replica gets them by replication.
    pub fn open_with_replica(url: &str, replica_url: &str) -> StoreResult<Self> {
        let mut store = Self::open(url)?;
        let config = replica::read_only(connection_config(replica_url)?);
        let replica = replica::Replica::new(Pool::new(config, POOL_MAX, POOL_WAIT));
        let primary_version = store.schema_version()?;
        match replica
            .connect()
            .and_then(|mut c| migrations::current_version(&mut c))
        {
            Ok(v) if v == primary_version => {}
            Ok(v) => tracing::warn!(
                replica_schema = v,
                primary_schema = primary_version,
                "the read replica's schema differs from the primary's (replication lag, or the wrong database?)"
            ),
            Err(e) => tracing::warn!(error = %e,
                "the read replica does not answer; reads go to the primary until it does"),
        }
        store.replica = Some(replica);
        Ok(store)
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> StoreResult<u32> {
        migrations::current_version(&mut *self.pool.get()?)
    }
}

impl Backend for PgStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    /// PostgreSQL's shared buffers serve every connection, and a lookup's reads on the lookups
    /// thread's one connection would be round trips in sequence: views are read on the pool.
    fn views_on_readers(&self) -> bool {
        true
    }

    /// On a pooled connection outside any explicit transaction.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut *self.pool.get()?)
    }

    /// On the replica if there is one (and it answers), else on the primary. The answer may
    /// trail the primary by the replication lag, but what was just written on the primary is
    /// never reported `missing`.
    fn read_replica_or_primary<T>(
        &self,
        f: impl Fn(&mut dyn Db) -> StoreResult<T>,
        missing: impl Fn(&T) -> bool,
    ) -> StoreResult<T> {
        if let Some(v) = self.replica.as_ref().and_then(|r| r.try_read(&f)) {
            if !missing(&v) {
                return Ok(v);
            }
        }
        self.read(f)
    }

    /// Generic plans (see [`GENERIC_PLANS`]): the lookup views read here.
    fn snapshot<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        conn.batch(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {GENERIC_PLANS}"
        ))?;
        let out = f(&mut *conn);
        Db::rollback(&mut *conn);
        out
    }

    /// A lookup group's transaction, with generic plans ([`GENERIC_PLANS`]) and the audit head
    /// locked (every lookup appends an audit entry), begun in one round trip.
    fn begin_lookups(&self) -> StoreResult<Box<dyn crate::LookupTx + '_>> {
        let mut conn = self.pool.get()?;
        let begun = conn.client().simple_query(&format!(
            "BEGIN; {GENERIC_PLANS}; {}",
            crate::sql::audit::LOCKED_HEAD
        ));
        let head = match begun {
            Ok(messages) => messages.iter().find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => {
                    Some((r.get(0)?.parse::<i64>().ok()?, r.get(1)?.to_owned()))
                }
                _ => None,
            }),
            Err(e) => {
                Db::rollback(&mut *conn);
                return Err(e.into());
            }
        };
        let tx = SqlTx::new(Box::new(conn));
        // A missing head row is recreated at the first append, as in any other transaction.
        Ok(Box::new(match head {
            Some((seq, hash)) => tx.with_audit_head(crate::sql::audit::Head::locked(seq, hash)),
            None => tx,
        }))
    }

    fn begin(&self) -> StoreResult<Box<dyn DbHandle + '_>> {
        let mut conn = self.pool.get()?;
        Db::begin(&mut *conn)?;
        Ok(Box::new(conn))
    }

    /// PostgreSQL is backed up with its own tools (`pg_dump`, base backups): docs/DEPLOYMENT.md.
    fn backup_file(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Config(
            "cpis backup copies the embedded SQLite database; back up PostgreSQL with pg_dump or base backups".into(),
        ))
    }
}

/// A `postgres://` URL's connection settings, with cpis's defaults for what it leaves out.
fn connection_config(url: &str) -> StoreResult<postgres::Config> {
    let mut config = postgres::Config::from_str(url)
        .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("cpis");
    }
    Ok(config)
}
