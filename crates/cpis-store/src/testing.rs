//! Helpers for tests against a real database, on either backend: reaching the database behind
//! the store's back ([`execute_batch`]), the checks a test harness runs when a test ends
//! ([`held_leases`], with [`crate::Store::audit_verify`]), and [`OffRuntime`], a store whose calls
//! leave an async test's thread (the PostgreSQL client blocks on a runtime of its own and may not
//! run inside another).

use crate::sql::{Backend, Db};
use crate::{
    AuditQuery, AuditVerification, ChangesTx, DeadDelivery, DueDelivery, IdentityChange, LookupTx,
    MeshOutboxEntry, MeshOutgoing, NewApiToken, NewMeshMessage, OAuthClient, OutboxStats,
    RecordQuery, RowFilter, Session, Store, StoreCounts, StoreResult, StoredRecord, UploadTx, User,
    Webhook,
};
use chrono::{DateTime, Utc};
use cpis_domain::data_quality::UploadOutcomeCounts;
use cpis_domain::notification::Ack;
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::{
    Access, AuditEntry, AuditRecord, CareSetting, Demographics, LocalAuthority, NhsNumber,
    Notification, OdsCode, Plan,
};
use std::sync::Arc;

/// Runs `f` on a plain thread of its own and waits for it.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Runs `f` on the database `url` names (a `postgres://` URL or a SQLite path), through a
/// connection of its own, on a plain thread.
fn with_backend<T: Send>(
    url: &str,
    f: impl Fn(&mut dyn Db) -> StoreResult<T> + Send + Sync,
    write: bool,
) -> StoreResult<T> {
    off_runtime(|| match crate::sqlite_path(url)? {
        Some(path) => {
            let store = crate::sqlite::SqliteStore::open(path)?;
            if write {
                store.write(&f)
            } else {
                store.read(&f)
            }
        }
        None => {
            let store = crate::postgres::PgStore::open(url)?;
            if write {
                store.write(&f)
            } else {
                store.read(&f)
            }
        }
    })
}

/// Runs SQL statements (no parameters) in one transaction on the database `url` names: for
/// tests that tamper with what the store wrote, or make it fail.
pub fn execute_batch(url: &str, sql: &str) -> StoreResult<()> {
    with_backend(url, |db| db.batch(sql), true)
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
    with_backend(
        url,
        |db| {
            let mut held = Vec::new();
            for (channel, sql) in [
                (
                    "webhook delivery",
                    "SELECT id, next_attempt_at FROM deliveries
                     WHERE delivered_at IS NULL AND dead_at IS NULL AND attempts = 0
                       AND next_attempt_at > created_at AND next_attempt_at > $1 ORDER BY id",
                ),
                (
                    "MESH message",
                    "SELECT id, next_attempt_at FROM mesh_outbox
                     WHERE sent_at IS NULL AND dead_at IS NULL AND attempts = 0
                       AND next_attempt_at > created_at AND next_attempt_at > $1 ORDER BY id",
                ),
            ] {
                for r in db.rows(sql, &[&now])? {
                    let id: i64 = r.get(0)?;
                    let until: DateTime<Utc> = r.get(1)?;
                    held.push(format!("{channel} {id} leased until {until}"));
                }
            }
            Ok(held)
        },
        false,
    )
}

/// A store whose every call (but the transactions it opens, used where they are opened) runs on
/// a plain thread: what an async test holds to call a PostgreSQL store directly. Dropping it
/// releases the store on a plain thread too (closing connections blocks).
pub struct OffRuntime {
    inner: Option<Arc<dyn Store>>,
}

impl OffRuntime {
    pub fn new(store: Arc<dyn Store>) -> Self {
        OffRuntime { inner: Some(store) }
    }

    #[allow(clippy::expect_used, reason = "only Drop takes the store")]
    fn inner(&self) -> &dyn Store {
        self.inner.as_deref().expect("the store until dropped")
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        if let Some(store) = self.inner.take() {
            off_runtime(move || drop(store));
        }
    }
}

impl Store for OffRuntime {
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
    fn ping(&self) -> StoreResult<()> {
        off_runtime(|| self.inner().ping())
    }
    fn counts(&self) -> StoreResult<StoreCounts> {
        off_runtime(|| self.inner().counts())
    }
    fn upsert_local_authorities(
        &self,
        las: &[LocalAuthority],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        off_runtime(|| self.inner().upsert_local_authorities(las, now))
    }
    fn upsert_care_settings(
        &self,
        settings: &[CareSetting],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        off_runtime(|| self.inner().upsert_care_settings(settings, now))
    }
    fn local_authority(&self, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>> {
        off_runtime(|| self.inner().local_authority(ods))
    }
    fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        off_runtime(|| self.inner().local_authorities())
    }
    fn care_setting(&self, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
        off_runtime(|| self.inner().care_setting(ods))
    }
    fn care_settings(&self) -> StoreResult<Vec<CareSetting>> {
        off_runtime(|| self.inner().care_settings())
    }
    fn upsert_demographics(
        &self,
        entries: &[Demographics],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        off_runtime(|| self.inner().upsert_demographics(entries, now))
    }
    fn demographics(&self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        off_runtime(|| self.inner().demographics(nhs))
    }
    fn records_for(&self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        off_runtime(|| self.inner().records_for(nhs))
    }
    fn la_record_count(&self, la: &OdsCode) -> StoreResult<u64> {
        off_runtime(|| self.inner().la_record_count(la))
    }
    fn la_records(&self, la: &OdsCode, query: &RecordQuery) -> StoreResult<Vec<StoredRecord>> {
        off_runtime(|| self.inner().la_records(la, query))
    }
    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        self.inner().begin_lookups()
    }
    fn begin_changes(&self) -> StoreResult<Box<dyn ChangesTx + '_>> {
        self.inner().begin_changes()
    }
    fn purgeable_plans(&self) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>> {
        off_runtime(|| self.inner().purgeable_plans())
    }
    fn backup_to(&self, path: &std::path::Path) -> StoreResult<()> {
        off_runtime(|| self.inner().backup_to(path))
    }
    fn unacknowledged_notifications(&self) -> StoreResult<u64> {
        off_runtime(|| self.inner().unacknowledged_notifications())
    }
    fn outbox_stats(&self) -> StoreResult<Vec<OutboxStats>> {
        off_runtime(|| self.inner().outbox_stats())
    }
    fn add_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> StoreResult<()> {
        off_runtime(|| self.inner().add_webhook(webhook, audit))
    }
    fn webhooks(&self, la: &OdsCode) -> StoreResult<Vec<Webhook>> {
        off_runtime(|| self.inner().webhooks(la))
    }
    fn remove_webhook(
        &self,
        la: &OdsCode,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        off_runtime(|| self.inner().remove_webhook(la, id, now, audit))
    }
    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        off_runtime(|| self.inner().claim_deliveries(now, lease_until, limit))
    }
    fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()> {
        off_runtime(|| self.inner().delivery_succeeded(id, status, now))
    }
    fn delivery_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        off_runtime(|| {
            self.inner()
                .delivery_failed(id, status, error, retry_at, now)
        })
    }
    fn dead_deliveries(&self, limit: u32) -> StoreResult<Vec<DeadDelivery>> {
        off_runtime(|| self.inner().dead_deliveries(limit))
    }
    fn mesh_pending_notifications(&self, limit: u32) -> StoreResult<Vec<(Notification, String)>> {
        off_runtime(|| self.inner().mesh_pending_notifications(limit))
    }
    fn mesh_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<MeshOutgoing>> {
        off_runtime(|| self.inner().mesh_claim(now, lease_until, limit))
    }
    fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        off_runtime(|| self.inner().mesh_send_started(id, now))
    }
    fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        off_runtime(|| self.inner().mesh_sent(id, message_id, now))
    }
    fn mesh_send_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        off_runtime(|| self.inner().mesh_send_failed(id, error, retry_at, now))
    }
    fn mesh_outbox(&self, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>> {
        off_runtime(|| self.inner().mesh_outbox(limit))
    }
    fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        off_runtime(|| self.inner().recent_accesses(nhs, limit))
    }
    fn notifications(
        &self,
        la: &OdsCode,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        off_runtime(|| self.inner().notifications(la, after, limit))
    }
    fn acknowledge(
        &self,
        la: &OdsCode,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Ack> {
        off_runtime(|| self.inner().acknowledge(la, id, by, now))
    }
    fn notifications_newest(
        &self,
        la: &OdsCode,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        off_runtime(|| self.inner().notifications_newest(la, before, limit))
    }
    fn create_user(&self, user: &User) -> StoreResult<()> {
        off_runtime(|| self.inner().create_user(user))
    }
    fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        off_runtime(|| self.inner().user_by_username(username))
    }
    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        off_runtime(|| self.inner().user_by_id(id))
    }
    fn list_users(&self) -> StoreResult<Vec<User>> {
        off_runtime(|| self.inner().list_users())
    }
    fn update_user(&self, user: &User, now: DateTime<Utc>) -> StoreResult<()> {
        off_runtime(|| self.inner().update_user(user, now))
    }
    fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        off_runtime(|| {
            self.inner()
                .record_login_failure(user_id, max_failures, lock_until, now)
        })
    }
    fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        off_runtime(|| self.inner().clear_login_failures(user_id, now))
    }
    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        off_runtime(|| self.inner().create_api_token(token))
    }
    fn change_identity(
        &self,
        change: &IdentityChange,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        off_runtime(|| self.inner().change_identity(change, now, audit))
    }
    fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        off_runtime(|| self.inner().user_by_token_hash(token_hash, now))
    }
    fn create_session(&self, session: &Session) -> StoreResult<()> {
        off_runtime(|| self.inner().create_session(session))
    }
    fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<(Session, User)>> {
        off_runtime(|| self.inner().session(id_hash, now))
    }
    fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        off_runtime(|| self.inner().delete_session(id_hash))
    }
    fn oauth_client(&self, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
        off_runtime(|| self.inner().oauth_client(client_id))
    }
    fn oauth_clients(&self) -> StoreResult<Vec<OAuthClient>> {
        off_runtime(|| self.inner().oauth_clients())
    }
    fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        off_runtime(|| {
            self.inner()
                .use_assertion_jti(client_id, jti, expires_at, now)
        })
    }
    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        off_runtime(|| self.inner().append_audit(entry))
    }
    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        off_runtime(|| self.inner().audit_search(query))
    }
    fn audit_verify(&self) -> StoreResult<AuditVerification> {
        off_runtime(|| self.inner().audit_verify())
    }
    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>> {
        self.inner().begin_upload()
    }
    fn record_refused_upload(&self, summary: &UploadSummary) -> StoreResult<()> {
        off_runtime(|| self.inner().record_refused_upload(summary))
    }
    fn upload(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>> {
        off_runtime(|| self.inner().upload(la, id))
    }
    fn recent_uploads(&self, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
        off_runtime(|| self.inner().recent_uploads(la, limit))
    }
    fn upload_rows(
        &self,
        la: &OdsCode,
        id: &UploadId,
        filter: &RowFilter,
    ) -> StoreResult<Vec<RowResult>> {
        off_runtime(|| self.inner().upload_rows(la, id, filter))
    }
    fn applied_uploads_since(&self, la: &OdsCode, id: &UploadId) -> StoreResult<u64> {
        off_runtime(|| self.inner().applied_uploads_since(la, id))
    }
    fn held_file(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>> {
        off_runtime(|| self.inner().held_file(la, id))
    }
    fn la_upload_stats(
        &self,
        la: &OdsCode,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<UploadOutcomeCounts>> {
        off_runtime(|| self.inner().la_upload_stats(la, since))
    }
    fn purge(
        &self,
        plans: &[(OdsCode, NhsNumber, Plan)],
        audit: &AuditEntry,
    ) -> StoreResult<(u64, u64)> {
        off_runtime(|| self.inner().purge(plans, audit))
    }
    fn mesh_enqueue(
        &self,
        messages: &[NewMeshMessage],
        cursors: &[(OdsCode, u64)],
    ) -> StoreResult<usize> {
        off_runtime(|| self.inner().mesh_enqueue(messages, cursors))
    }
}

/// Runs `sql` on the database `url` names past the audit log's append-only guard (its triggers
/// are dropped first, in the same transaction): what someone with direct database access could
/// do, for tests that the chain's verification finds it.
pub fn tamper_with_audit_log(url: &str, sql: &str) -> StoreResult<()> {
    let unguard = if crate::sqlite_path(url)?.is_some() {
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;"
    } else {
        "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
         DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log;"
    };
    execute_batch(url, &format!("{unguard}\n{sql}"))
}
