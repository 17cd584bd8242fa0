//! The embedded SQLite backend: one file, WAL journal, `synchronous=FULL` so that every
//! acknowledged write survives power loss. One writer connection (SQLite allows one writer at a
//! time) and a small pool of reader connections.

mod audit;
mod care_settings;
mod convert;
mod directory;
mod la_records;
mod lifecycle;
mod lookups;
mod mesh;
mod migrations;
mod records;
mod security;
mod stats;
mod uploads;
mod webhooks;

use crate::{
    AuditQuery, AuditVerification, IdentityChange, NewApiToken, OAuthClient, Session, User,
};
use crate::{
    LookupTx, RowFilter, Store, StoreCounts, StoreError, StoreResult, StoredRecord, UploadTx,
};
use chrono::{DateTime, Utc};
use cpis_domain::notification::Ack;
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::{Access, AuditEntry, AuditRecord, Notification};
use cpis_domain::{CareSetting, Demographics, LocalAuthority, NhsNumber, OdsCode};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const READER_POOL: usize = 32;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
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
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Takes a connection out of a mutex even after a panic elsewhere, and never hands out one left
/// inside a transaction.
fn take(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    let guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
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
        migrations::run(&mut writer)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> StoreResult<u32> {
        migrations::current_version(&take(&self.writer))
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < READER_POOL && conn.is_autocommit() {
            pool.push(conn);
        }
        out
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = take(&self.writer);
        f(&mut conn)
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
    }

    fn counts(&self) -> StoreResult<StoreCounts> {
        self.read(|c| {
            let n = |table: &str| -> StoreResult<u64> {
                Ok(
                    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })? as u64,
                )
            };
            Ok(StoreCounts {
                local_authorities: n("local_authorities")?,
                care_settings: n("care_settings")?,
                demographics: n("demographics")?,
                records: n("records")?,
                plans: n("plans")?,
                uploads: n("uploads")?,
                accesses: n("accesses")?,
                notifications: n("notifications")?,
            })
        })
    }

    fn upsert_local_authorities(
        &self,
        las: &[LocalAuthority],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        self.write(|c| directory::upsert_local_authorities(c, las, now))
    }

    fn upsert_care_settings(
        &self,
        settings: &[CareSetting],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        self.write(|c| directory::upsert_care_settings(c, settings, now))
    }

    fn local_authority(&self, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
        self.read(|c| directory::local_authority(c, ods))
    }

    fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        self.read(directory::local_authorities)
    }

    fn care_settings(&self) -> StoreResult<Vec<CareSetting>> {
        self.read(care_settings::care_settings)
    }

    fn care_setting(&self, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
        self.read(|c| directory::care_setting(c, ods))
    }

    fn upsert_demographics(
        &self,
        entries: &[Demographics],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        self.write(|c| directory::upsert_demographics(c, entries, now))
    }

    fn demographics(&self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        self.read(|c| directory::demographics(c, nhs))
    }

    fn records_for(&self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        self.read(|c| records::records_for(c, nhs))
    }

    fn la_record_count(&self, la: &OdsCode) -> StoreResult<u64> {
        self.read(|c| records::la_record_count(c, la))
    }

    fn la_records(
        &self,
        la: &OdsCode,
        query: &crate::RecordQuery,
    ) -> StoreResult<Vec<StoredRecord>> {
        self.read(|c| la_records::la_records(c, la, query))
    }

    fn notifications_newest(
        &self,
        la: &OdsCode,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(|c| la_records::notifications_newest(c, la, before, limit))
    }

    fn create_user(&self, user: &User) -> StoreResult<()> {
        self.write(|c| security::create_user(c, user))
    }

    fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.read(|c| security::user_by_username(c, username))
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.read(|c| security::user_by_id(c, id))
    }

    fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read(security::list_users)
    }

    fn update_user(&self, user: &User, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| security::update_user(c, user, now))
    }

    fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        self.write(|c| security::record_login_failure(c, user_id, max_failures, lock_until, now))
    }

    fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.write(|c| security::clear_login_failures(c, user_id, now))
    }

    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        self.write(|c| security::create_api_token(c, token))
    }

    fn change_identity(
        &self,
        change: &IdentityChange,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.write(|c| security::change_identity(c, change, now, audit))
    }

    fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.read(|c| security::user_by_token_hash(c, token_hash, now))
    }

    fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.write(|c| security::create_session(c, session))
    }

    fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<(Session, User)>> {
        self.read(|c| security::session(c, id_hash, now))
    }

    fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.write(|c| security::delete_session(c, id_hash))
    }

    fn oauth_client(&self, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
        self.read(|c| security::oauth_client(c, client_id))
    }

    fn oauth_clients(&self) -> StoreResult<Vec<OAuthClient>> {
        self.read(security::oauth_clients)
    }

    fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write(|c| security::use_assertion_jti(c, client_id, jti, expires_at, now))
    }

    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| audit::append_alone(c, entry))
    }

    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.read(|c| audit::search(c, query))
    }

    fn audit_verify(&self) -> StoreResult<AuditVerification> {
        self.read(audit::verify)
    }

    fn begin_changes(&self) -> StoreResult<Box<dyn crate::ChangesTx + '_>> {
        Ok(Box::new(lifecycle::SqliteChangesTx::begin(take(
            &self.writer,
        ))?))
    }

    fn purgeable_plans(&self) -> StoreResult<Vec<(OdsCode, NhsNumber, cpis_domain::Plan)>> {
        self.read(lifecycle::purgeable_plans)
    }

    fn purge(
        &self,
        plans: &[(OdsCode, NhsNumber, cpis_domain::Plan)],
        audit: &AuditEntry,
    ) -> StoreResult<(u64, u64)> {
        self.write(|c| lifecycle::purge(c, plans, audit))
    }

    fn backup_to(&self, path: &Path) -> StoreResult<()> {
        self.read(|c| lifecycle::backup_to(c, path))
    }

    fn unacknowledged_notifications(&self) -> StoreResult<u64> {
        self.read(lifecycle::unacknowledged)
    }

    fn outbox_stats(&self) -> StoreResult<Vec<crate::OutboxStats>> {
        self.read(lifecycle::outbox_stats)
    }

    fn add_webhook(&self, webhook: &crate::Webhook, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| audit::audited(c, entry, |tx| webhooks::add(tx, webhook), |_| true))
    }

    fn webhooks(&self, la: &OdsCode) -> StoreResult<Vec<crate::Webhook>> {
        self.read(|c| webhooks::list(c, la))
    }

    fn remove_webhook(
        &self,
        la: &OdsCode,
        id: &str,
        now: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let remove = |tx: &rusqlite::Connection| webhooks::remove(tx, la, id, now);
        self.write(|c| audit::audited(c, entry, remove, |removed| *removed))
    }

    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::DueDelivery>> {
        self.write(|c| webhooks::claim(c, now, lease_until, limit))
    }

    fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| webhooks::succeeded(c, id, status, now))
    }

    fn delivery_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|c| webhooks::failed(c, id, status, error, retry_at, now))
    }

    fn dead_deliveries(&self, limit: u32) -> StoreResult<Vec<crate::DeadDelivery>> {
        self.read(|c| webhooks::dead(c, limit))
    }

    fn mesh_pending_notifications(&self, limit: u32) -> StoreResult<Vec<(Notification, String)>> {
        self.read(|c| mesh::pending_notifications(c, limit))
    }

    fn mesh_enqueue(
        &self,
        messages: &[crate::NewMeshMessage],
        cursors: &[(OdsCode, u64)],
    ) -> StoreResult<usize> {
        self.write(|c| mesh::enqueue(c, messages, cursors))
    }

    fn mesh_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<crate::MeshOutgoing>> {
        self.write(|c| mesh::claim(c, now, lease_until, limit))
    }

    fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| mesh::send_started(c, id, now))
    }

    fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| mesh::sent(c, id, message_id, now))
    }

    fn mesh_send_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|c| mesh::failed(c, id, error, retry_at, now))
    }

    fn mesh_outbox(&self, limit: u32) -> StoreResult<Vec<crate::MeshOutboxEntry>> {
        self.read(|c| mesh::outbox(c, limit))
    }

    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        Ok(Box::new(lookups::SqliteLookupTx::begin(take(
            &self.writer,
        ))?))
    }

    fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        self.read(|c| lookups::recent_accesses(c, nhs, limit))
    }

    fn notifications(
        &self,
        la: &OdsCode,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(|c| lookups::notifications(c, la, after, limit))
    }

    fn acknowledge(
        &self,
        la: &OdsCode,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Ack> {
        self.write(|c| lookups::acknowledge(c, la, id, by, now))
    }

    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>> {
        Ok(Box::new(uploads::SqliteUploadTx::begin(take(
            &self.writer,
        ))?))
    }

    fn record_refused_upload(&self, summary: &UploadSummary) -> StoreResult<()> {
        self.write(|c| uploads::insert_summary(c, summary))
    }

    fn upload(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>> {
        self.read(|c| uploads::summary(c, la, id))
    }

    fn recent_uploads(&self, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
        self.read(|c| uploads::recent(c, la, limit))
    }

    fn upload_rows(
        &self,
        la: &OdsCode,
        id: &UploadId,
        filter: &RowFilter,
    ) -> StoreResult<Vec<RowResult>> {
        self.read(|c| uploads::rows(c, la, id, filter))
    }

    fn applied_uploads_since(&self, la: &OdsCode, id: &UploadId) -> StoreResult<u64> {
        self.read(|c| uploads::applied_since(c, la, id))
    }

    fn held_file(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>> {
        self.read(|c| uploads::held_file(c, la, id))
    }

    fn la_upload_stats(
        &self,
        la: &OdsCode,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<crate::UploadOutcomeCounts>> {
        self.read(|c| stats::la_upload_stats(c, la, since))
    }
}
