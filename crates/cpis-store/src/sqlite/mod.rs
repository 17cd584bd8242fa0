//! The embedded SQLite backend: one file, WAL journal, `synchronous=FULL` so that every
//! acknowledged write survives power loss. One writer connection (SQLite allows one writer at a
//! time) and a small pool of reader connections.

mod attendance_cache;
mod lookup_spool;
mod migrations;

pub use lookup_spool::{lookup_log_waiting, lookup_spool_entries};

use crate::sql::{to_sqlite, Arg, Args, Backend, Db, DbHandle, Lock, Row, SqlTx, Value};
use crate::LookupTx;
use crate::{StoreError, StoreResult};
use lookup_spool::LookupSpool;
use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection, ErrorCode, OpenFlags};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

const READER_POOL: usize = 32;
/// Statement texts whose SQLite spelling a thread remembers (dynamic texts past this clear it).
const DIALECT_CACHE: usize = 1_024;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// WAL pages between automatic checkpoints of the writer.
const WAL_AUTOCHECKPOINT: i64 = 4_000;
/// Bytes the WAL file is truncated to when it is reset after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Where lookups are made durable, to be copied in by the lookup service's log thread
    /// (`lookup_spool.rs`).
    spool: LookupSpool,
    /// The attendance windows of the children looked up lately, read in logged lookup groups
    /// (`attendance_cache.rs`).
    attendance: attendance_cache::AttendanceCache,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.spool.flush_owned(self);
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory => StoreError::unavailable(&e),
                ErrorCode::ConstraintViolation => StoreError::Constraint(e.to_string()),
                _ => StoreError::Backend(e.to_string()),
            },
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

/// Runs `f` again while SQLite answers busy or locked, for up to [`BUSY_TIMEOUT`].
fn retry_while_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Switching a new file to WAL takes a lock SQLite does not wait for through the busy
    // handler: several processes opening a fresh database at once retry here instead.
    retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A cached statement whose bound value could change its plan (a parameter compared with a
    // column a partial index's WHERE names, such as `plan_type = $2` beside the UCPP index) is
    // otherwise compiled again at every execution with new values: the planner stability
    // guarantee keeps the one plan. Measured on the upload path (issue #16): a per-row read of a
    // record and its plan by type took a 500k-row reload from 11 s to 21-26 s without it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Takes a connection out of a mutex even after a panic elsewhere, and never hands out one left
/// inside a transaction.
fn take(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    fresh(conn.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A connection just taken, out of any transaction a panic left open.
fn fresh(guard: MutexGuard<'_, Connection>) -> MutexGuard<'_, Connection> {
    if !guard.is_autocommit() {
        let _ = guard.execute_batch("ROLLBACK");
    }
    guard
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = connect(&path)?;
        // The writer applies whole uploads in one transaction: give it a larger page cache
        // (32 MiB) than the readers' default.
        writer.pragma_update(None, "cache_size", -32_768)?;
        // Checkpoints copy every page changed since the last one from the WAL into the file: a
        // page many commits changed (a table's last page, the audit head, an index's hot leaves)
        // is copied once per checkpoint, so checkpointing less often writes less per commit
        // (issue #16). 4,000 pages (16 MiB at 4 KiB pages) instead of SQLite's 1,000; the WAL
        // is cut back to 64 MiB when it restarts. Durability is the WAL's (synchronous=FULL).
        writer.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
        writer.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
        migrations::run(&mut writer)?;
        let store = SqliteStore {
            spool: LookupSpool::new(&path),
            attendance: Default::default(),
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        };
        // Lookups a stopped (or killed) server answered from the spool are copied in before
        // anything reads the database. A command run beside a live server that is in the middle
        // of an upload cannot have the writer: it goes on, and the server copies them in.
        let recovered = (|| {
            while store.spool.drain(&store)? > 0 {}
            StoreResult::Ok(())
        })();
        if let Err(e) = recovered {
            tracing::warn!(error = %e, "spooled lookups not copied in at open; the server will");
        }
        store.spool.release();
        Ok(store)
    }

    /// The writer, if it is free within `wait`.
    fn writer_within(&self, wait: Duration) -> Option<MutexGuard<'_, Connection>> {
        let deadline = Instant::now() + wait;
        loop {
            match self.writer.try_lock() {
                Ok(guard) => return Some(fresh(guard)),
                Err(TryLockError::Poisoned(p)) => return Some(fresh(p.into_inner())),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        }
    }

    /// `f` on a pooled reader connection, as the database is now.
    fn read_now<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.checkout_reader()?;
        let out = f(&mut conn);
        self.checkin_reader(conn);
        out
    }

    /// A reader connection from the pool (or a new one).
    fn checkout_reader(&self) -> StoreResult<Connection> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(c) => Ok(c),
            None => connect(&self.path),
        }
    }

    /// Gives a reader back to the pool, unless the pool is full or it is inside a transaction.
    fn checkin_reader(&self, conn: Connection) {
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < READER_POOL && conn.is_autocommit() {
            pool.push(conn);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> StoreResult<u32> {
        migrations::current_version(&take(&self.writer))
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Arg::Int(i) => ToSqlOutput::from(i),
            Arg::Text(s) => ToSqlOutput::from(s),
            Arg::Blob(b) => ToSqlOutput::from(b),
            Arg::Bool(b) => ToSqlOutput::from(i64::from(b)),
            Arg::Time(t) => ToSqlOutput::from(crate::sql::time_text(t)),
            Arg::Date(d) => ToSqlOutput::from(d.to_string()),
            Arg::TextList(_) | Arg::IntList(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "lists are bound on PostgreSQL only".into(),
                ))
            }
        })
    }
}

thread_local! {
    /// The dialect step's output for each statement text this thread has run: a statement is
    /// rewritten once, not at every execution (the rewrite was a third of an upload's CPU time,
    /// issue #16).
    static DIALECT: RefCell<HashMap<String, Rc<str>>> = RefCell::new(HashMap::new());
}

/// `sql` in SQLite's spelling ([`to_sqlite`]), remembered per thread.
fn sqlite_text(sql: &str) -> Rc<str> {
    DIALECT.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(text) = cache.get(sql) {
            return text.clone();
        }
        if cache.len() >= DIALECT_CACHE {
            cache.clear();
        }
        let text: Rc<str> = to_sqlite(sql).into();
        cache.insert(sql.to_owned(), text.clone());
        text
    })
}

fn bound<'a>(args: Args<'a>) -> Vec<Arg<'a>> {
    args.iter().map(|a| a.arg()).collect()
}

impl Db for Connection {
    fn exec(&mut self, sql: &str, args: Args<'_>) -> StoreResult<u64> {
        let mut st = self.prepare_cached(&sqlite_text(sql))?;
        Ok(st.execute(params_from_iter(bound(args)))? as u64)
    }

    fn rows(&mut self, sql: &str, args: Args<'_>) -> StoreResult<Vec<Row>> {
        let mut st = self.prepare_cached(&sqlite_text(sql))?;
        let columns = st.column_count();
        let mut rows = st.query(params_from_iter(bound(args)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Int(n),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(
                        std::str::from_utf8(t)
                            .map_err(|_| StoreError::corrupt("text"))?
                            .to_owned(),
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> StoreResult<()> {
        Ok(self.execute_batch(sql)?)
    }

    fn begin(&mut self) -> StoreResult<()> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn commit(&mut self) -> StoreResult<()> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) {
        if !self.is_autocommit() {
            let _ = self.execute_batch("ROLLBACK");
        }
    }

    /// The writer is the only one: nothing to lock.
    fn lock(&mut self, _lock: Lock<'_>) -> StoreResult<()> {
        Ok(())
    }
}

impl Backend for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    /// On a pooled reader connection.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.read_now(f)
    }

    /// A read transaction on a reader: WAL keeps its snapshot while writes go on.
    fn snapshot<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.read(|c| {
            c.batch("BEGIN")?;
            let out = f(c);
            c.rollback();
            out
        })
    }

    /// The one writer, inside `BEGIN IMMEDIATE`.
    fn begin(&self) -> StoreResult<Box<dyn DbHandle + '_>> {
        let mut writer = take(&self.writer);
        writer.begin()?;
        Ok(Box::new(writer))
    }

    /// In the lookup log (never waiting for the writer, and copied in many lookups to a
    /// transaction: `lookup_spool.rs`), or on the writer when another process owns the log.
    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        if let Some(tx) = self.spool.begin(self)? {
            return Ok(Box::new(tx));
        }
        // Another process owns the lookup log: wait for the writer.
        let mut writer = take(&self.writer);
        writer.begin()?;
        Ok(Box::new(SqlTx::new(Box::new(writer))))
    }

    /// The lookup service's log thread: the log is opened (made ready) at its first call, so
    /// that the first lookup an upload holds up does not wait for that.
    fn drain_lookup_spool(&self) -> StoreResult<u64> {
        self.spool.prepare(self)?;
        self.spool.drain(self)
    }

    /// The lookups logged so far (one batch: as many as a busy server logs in about a second).
    fn copy_in_logged_lookups(&self, wait: bool) -> StoreResult<()> {
        if wait {
            self.spool.drain(self)?;
        } else {
            self.spool.copy_in_if_free(self);
        }
        Ok(())
    }

    /// The database with every spooled lookup copied in first.
    fn backup_file(&self, path: &Path) -> StoreResult<()> {
        while self.spool.drain(self)? > 0 {}
        let conn = connect(&self.path)?;
        let mut dst = Connection::open(path)?;
        let backup = rusqlite::backup::Backup::new(&conn, &mut dst)?;
        backup.run_to_completion(256, std::time::Duration::from_millis(0), None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use chrono::Utc;
    use cpis_domain::{NewNotification, NotificationKind, OdsCode};

    /// A notification's payload is kept deflated (a BLOB) and reads back as written, as does
    /// one an earlier version kept as text.
    #[test]
    fn notification_payloads_are_deflated_at_rest_and_text_ones_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        let la = OdsCode::parse("E08000026").unwrap();
        let payload = format!(
            "{{\"kind\":\"access\",\"child\":{{\"given_name\":\"Zo\u{eb}\"}},\"pad\":\"{}\"}}",
            "abc".repeat(200)
        );
        let mut tx = Store::begin_lookups(&store).unwrap();
        tx.insert_notification(&NewNotification {
            id: "n-deflated".into(),
            la: la.clone(),
            kind: NotificationKind::Access,
            created_at: Utc::now(),
            payload: payload.clone(),
        })
        .unwrap();
        tx.commit().unwrap();
        Store::drain_lookup_spool(&store).unwrap();
        let raw = connect(&db).unwrap();
        let (kind, size): (String, i64) = raw
            .query_row(
                "SELECT typeof(payload), length(payload) FROM notifications WHERE id = 'n-deflated'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kind, "blob");
        assert!((size as usize) < payload.len() / 2, "{size} bytes at rest");
        raw.execute(
            "INSERT INTO notifications (id, la_ods, kind, created_at, payload, la_seq)
             VALUES ('n-text', 'E08000026', 'access', '2026-12-04T00:00:00Z', '{\"as\":\"text\"}', 2)",
            [],
        )
        .unwrap();
        drop(raw);
        let read: Vec<(String, String)> = Store::notifications(&store, &la, 0, 10)
            .unwrap()
            .into_iter()
            .map(|n| (n.id, n.payload))
            .collect();
        assert_eq!(
            read,
            [
                ("n-deflated".to_owned(), payload),
                ("n-text".to_owned(), "{\"as\":\"text\"}".to_owned())
            ]
        );
    }
}
