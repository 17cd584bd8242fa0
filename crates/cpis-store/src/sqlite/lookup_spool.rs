//! The lookup spool: no clinician waits behind an upload (issue #16, target 3).
//!
//! SQLite has one writer, and an upload holds it for the length of its transaction (seconds for
//! a large full file, so that the file applies all or nothing). A lookup must be durable before
//! it is answered (its access, audit entry and notifications), but it must not wait that long.
//! When the writer is not free within [`SPOOL_AFTER`], or while earlier spooled lookups are still
//! waiting to be copied in, a lookup group reads its lookups' views (records, history,
//! attendance) and the accesses after them from a snapshot (WAL readers never wait for the
//! writer) and makes its writes durable in a spool file beside the database
//! (`<database>-lookups`, WAL, `synchronous=FULL`), one JSON entry per write, in order.
//!
//! [`drain`] copies the entries into the database in short transactions, in the order written,
//! through the same writes a lookup makes (so the audit chain and notification numbering are the
//! database's), and records in the same transaction the last entry copied
//! (`lookup_spool_drained`): a crash at any point neither loses an entry nor copies one twice.
//! The lookup service calls it whenever entries wait (`cpis_core::lookup`); it blocks until the
//! writer is free, then takes [`DRAIN_CHUNK`] entries per transaction so that lookups behind it
//! do not wait long either.
//!
//! While entries wait, a spooled lookup sees them: the accesses since its view are the
//! database's plus the spool's. Other readers (the LA's inbox, the clinician's history page)
//! see spooled lookups once copied in, moments after the upload commits.

use super::{connect, fresh, SqliteStore};
use crate::sql::{history, outbox, Backend, Db, SqlTx};
use crate::{LookupTx, LookupView, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{Access, AccessKind, AuditEntry, NewNotification, NhsNumber};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a lookup group waits for the writer before it spools instead.
pub(super) const SPOOL_AFTER: Duration = Duration::from_millis(20);
/// Spooled entries copied in per transaction.
const DRAIN_CHUNK: i64 = 2_000;

/// Entries written to a lookup spool and copied in from one, since the process started.
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static COPIED: AtomicU64 = AtomicU64::new(0);

/// Entries (an access, an audit entry, a notification each) this process has written to a lookup
/// spool and copied in from one since it started: the difference is what waits (metrics).
pub fn lookup_spool_entries() -> (u64, u64) {
    (
        WRITTEN.load(Ordering::Relaxed),
        COPIED.load(Ordering::Relaxed),
    )
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS spooled (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        nhs_number TEXT,
        entry      TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS spooled_accesses ON spooled (nhs_number)
        WHERE nhs_number IS NOT NULL;";

/// One write of a spooled lookup.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "write", rename_all = "kebab-case")]
enum Entry {
    Access(Access),
    Notification(NewNotification),
    Audit(AuditEntry),
}

pub(super) struct LookupSpool {
    path: PathBuf,
    /// The spool file's connection, opened at first use. A spooled group holds it from its start
    /// to its commit; a drain holds it while it reads and clears entries.
    conn: Mutex<Option<Connection>>,
    /// Whether entries may be waiting (set when a group spools, and at open when the file
    /// exists; cleared by a drain that found none).
    pending: AtomicBool,
    /// Entries copied in since the spool was last found empty (for the log).
    copied: AtomicU64,
}

/// The spool file of the database at `db`.
fn spool_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lookups");
    PathBuf::from(name)
}

/// How far the database has copied the spool (`lookup_spool_drained`).
fn drained_through(db: &mut dyn Db) -> StoreResult<i64> {
    db.row("SELECT through FROM lookup_spool_drained WHERE id = 1", &[])?
        .ok_or_else(|| StoreError::corrupt("lookup_spool_drained has no row"))?
        .get(0)
}

fn encode(entry: &Entry) -> StoreResult<String> {
    serde_json::to_string(entry).map_err(|e| StoreError::Backend(format!("spool entry: {e}")))
}

fn decode(text: &str) -> StoreResult<Entry> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("spool entry: {e}")))
}

impl LookupSpool {
    pub(super) fn new(db: &Path) -> Self {
        let path = spool_path(db);
        let pending = AtomicBool::new(path.exists());
        LookupSpool {
            path,
            conn: Mutex::new(None),
            pending,
            copied: AtomicU64::new(0),
        }
    }

    pub(super) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// The spool's connection, opening the file (and creating its table) at first use. Entry ids
    /// never go back below what the database has copied, even if the spool file was removed.
    fn lock(&self, store: &SqliteStore) -> StoreResult<MutexGuard<'_, Option<Connection>>> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            let conn = connect(&self.path)?;
            conn.execute_batch(SCHEMA)?;
            let through = store.read(drained_through)?;
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq)
                 SELECT 'spooled', ?1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'spooled')",
                params![through],
            )?;
            conn.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'spooled'",
                params![through],
            )?;
            *guard = Some(conn);
        }
        Ok(guard)
    }

    /// No entry waits: lookups may use the database again. Called under the spool's lock, which
    /// a spooling group holds until it has set `pending` again, so no entry is left unseen.
    fn found_empty(&self) {
        self.pending.store(false, Ordering::Release);
        let copied = self.copied.swap(0, Ordering::AcqRel);
        if copied > 0 {
            tracing::info!(
                entries = copied,
                "spooled lookups copied in: lookups use the database again"
            );
        }
    }

    /// A lookup group written to the spool, reading the database in a snapshot.
    pub(super) fn begin<'a>(&'a self, store: &'a SqliteStore) -> StoreResult<SpoolTx<'a>> {
        // The spool first, then the snapshot: a drain clears copied entries only under the
        // spool's lock, so every entry this snapshot has not copied is still in the spool.
        let spool = self.lock(store)?;
        // Dropped on an error below, it gives the reader back.
        let mut tx = SpoolTx {
            owner: self,
            store,
            spool,
            reader: Some(store.checkout_reader()?),
            through: 0,
            written: Vec::new(),
        };
        tx.reader().batch("BEGIN")?;
        tx.through = drained_through(tx.reader())?;
        Ok(tx)
    }

    /// Copies up to [`DRAIN_CHUNK`] waiting entries into the database in one transaction: how
    /// many (0 when none waited). Waits for the writer.
    pub(super) fn drain(&self, store: &SqliteStore) -> StoreResult<u64> {
        if !self.is_pending() {
            return Ok(0);
        }
        // A first look without the writer (a command opening the database beside a server that
        // is uploading must not wait for it when nothing is spooled). The snapshot's mark is at
        // most behind the writer's, so "nothing after it" is the writer's answer too.
        {
            let spool = self.lock(store)?;
            if waiting(&spool, store.read(drained_through)?, 1)?.is_empty() {
                self.found_empty();
                return Ok(0);
            }
        }
        let mut writer = fresh(store.writer.lock().unwrap_or_else(PoisonError::into_inner));
        writer.begin()?;
        let mut tx = SqlTx::new(Box::new(writer));
        let through = drained_through(tx.db_mut())?;
        let batch = {
            let spool = self.lock(store)?;
            let rows = waiting(&spool, through, DRAIN_CHUNK)?;
            if rows.is_empty() {
                self.found_empty();
                return Ok(0);
            }
            rows
        };
        let mut last = through;
        for (id, text) in &batch {
            match decode(text)? {
                Entry::Access(a) => tx.insert_access(&a)?,
                Entry::Notification(n) => tx.insert_notification(&n)?,
                Entry::Audit(e) => tx.append_audit(&e)?,
            }
            last = *id;
        }
        tx.db_mut().exec(
            "UPDATE lookup_spool_drained SET through = $1 WHERE id = 1",
            &[&last],
        )?;
        Box::new(tx).commit()?;
        let copied = batch.len() as u64;
        self.copied.fetch_add(copied, Ordering::AcqRel);
        COPIED.fetch_add(copied, Ordering::Relaxed);
        Ok(copied)
    }
}

/// Up to `limit` entries after `through` (the database's mark), in order, once the entries the
/// database already holds are cleared from the spool. Called under the spool's lock.
fn waiting(
    spool: &Option<Connection>,
    through: i64,
    limit: i64,
) -> StoreResult<Vec<(i64, String)>> {
    let Some(conn) = spool.as_ref() else {
        return Ok(Vec::new());
    };
    conn.execute("DELETE FROM spooled WHERE id <= ?1", params![through])?;
    let mut st =
        conn.prepare_cached("SELECT id, entry FROM spooled WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let rows = st
        .query_map(params![through, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A lookup group whose writes go to the spool (see the module's text).
pub(super) struct SpoolTx<'a> {
    owner: &'a LookupSpool,
    store: &'a SqliteStore,
    spool: MutexGuard<'a, Option<Connection>>,
    /// A reader inside a read transaction: the database as of the group's start.
    reader: Option<Connection>,
    /// The last spool entry the snapshot holds.
    through: i64,
    written: Vec<Entry>,
}

impl SpoolTx<'_> {
    fn reader(&mut self) -> &mut Connection {
        #[allow(clippy::expect_used, reason = "the reader is only taken back on drop")]
        self.reader.as_mut().expect("a spooled group's reader")
    }

    /// The child's accesses spooled and not yet copied in, this group's own included, oldest
    /// first.
    fn spooled_accesses(&mut self, nhs: NhsNumber) -> StoreResult<Vec<Access>> {
        let mut out = Vec::new();
        if let Some(conn) = self.spool.as_ref() {
            let mut st = conn.prepare_cached(
                "SELECT entry FROM spooled WHERE nhs_number = ?1 AND id > ?2 ORDER BY id",
            )?;
            let rows = st.query_map(params![nhs.digits(), self.through], |r| {
                r.get::<_, String>(0)
            })?;
            for text in rows {
                if let Entry::Access(a) = decode(&text?)? {
                    out.push(outbox::as_logged(&a));
                }
            }
        }
        out.extend(self.written.iter().filter_map(|e| match e {
            Entry::Access(a) if a.nhs_number == nhs => Some(outbox::as_logged(a)),
            _ => None,
        }));
        out.retain(|a| a.kind == AccessKind::Unscheduled);
        Ok(out)
    }
}

impl Drop for SpoolTx<'_> {
    fn drop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.rollback();
            self.store.checkin_reader(reader);
        }
    }
}

impl LookupTx for SpoolTx<'_> {
    /// From the group's snapshot (the spool's accesses come after it).
    fn view(
        &mut self,
        nhs: NhsNumber,
        limit: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<LookupView> {
        history::lookup_view(self.reader(), nhs, limit, now)
    }

    /// The database's (as of the group's snapshot), then the spool's.
    fn unscheduled_after(&mut self, nhs: NhsNumber, through: i64) -> StoreResult<Vec<Access>> {
        let mut out = history::unscheduled_after(self.reader(), nhs, through)?;
        out.extend(self.spooled_accesses(nhs)?);
        Ok(out)
    }

    fn insert_access(&mut self, access: &Access) -> StoreResult<()> {
        self.written.push(Entry::Access(access.clone()));
        Ok(())
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        self.written.push(Entry::Notification(n.clone()));
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        self.written.push(Entry::Audit(entry.clone()));
        Ok(())
    }

    /// Durable in the spool (one transaction, `synchronous=FULL`) before it returns.
    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let written = std::mem::take(&mut self.written);
        let Some(conn) = self.spool.as_mut() else {
            return Err(StoreError::Backend("the lookup spool is not open".into()));
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st =
                tx.prepare_cached("INSERT INTO spooled (nhs_number, entry) VALUES (?1, ?2)")?;
            for entry in &written {
                let child = match entry {
                    Entry::Access(a) => Some(a.nhs_number.digits()),
                    _ => None,
                };
                st.execute(params![child, encode(entry)?])?;
            }
        }
        tx.commit()?;
        WRITTEN.fetch_add(written.len() as u64, Ordering::Relaxed);
        if !self.owner.pending.swap(true, Ordering::AcqRel) {
            tracing::info!(
                spool = %self.owner.path.display(),
                "the database writer is busy (an upload?): lookups are being spooled"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// A server killed after creating the spool file and before its table holds nothing: the
    /// next store opens, finds nothing waiting, and lookups use the database again.
    #[test]
    fn a_spool_file_killed_before_its_table_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        drop(SqliteStore::open(&db).unwrap());
        drop(connect(&spool_path(&db)).unwrap());
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(Store::drain_lookup_spool(&store).unwrap(), 0);
        assert!(!store.spool.is_pending());
        let tx = Store::begin_lookups(&store).unwrap();
        tx.commit().unwrap();
    }
}
