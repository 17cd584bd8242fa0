//! [`Store`] for every backend, written once: each call is a shared query run where the backend
//! says (a read, perhaps on the replica; a write transaction; a snapshot).

use super::{audit, directory, identity, outbox, records, uploads, Backend, SqlTx};
use crate::{
    AuditQuery, AuditVerification, ChangesTx, DeadDelivery, DueDelivery, IdentityChange, LookupTx,
    MeshOutboxEntry, MeshOutgoing, NewApiToken, NewMeshMessage, OAuthClient, RecordQuery,
    RowFilter, Session, Store, StoreCounts, StoreResult, StoredRecord, UploadTx, User, Webhook,
};
use chrono::{DateTime, Utc};
use cpis_domain::data_quality::UploadOutcomeCounts;
use cpis_domain::notification::Ack;
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::{
    Access, AuditEntry, AuditRecord, CareSetting, Demographics, LocalAuthority, NhsNumber,
    Notification, OdsCode, Plan,
};

impl<B: Backend> Store for B {
    fn backend(&self) -> &'static str {
        self.name()
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.one("SELECT 1", &[]).map(|_| ()))
    }

    fn counts(&self) -> StoreResult<StoreCounts> {
        self.read_replica(|c| {
            let r = c.one(
                "SELECT (SELECT count(*) FROM local_authorities), (SELECT count(*) FROM care_settings),
                        (SELECT count(*) FROM demographics), (SELECT count(*) FROM records),
                        (SELECT count(*) FROM plans), (SELECT count(*) FROM uploads),
                        (SELECT count(*) FROM accesses), (SELECT count(*) FROM notifications)",
                &[],
            )?;
            Ok(StoreCounts {
                local_authorities: r.get(0)?,
                care_settings: r.get(1)?,
                demographics: r.get(2)?,
                records: r.get(3)?,
                plans: r.get(4)?,
                uploads: r.get(5)?,
                accesses: r.get(6)?,
                notifications: r.get(7)?,
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
        self.read_replica_or_primary(|c| directory::local_authority(c, ods), Option::is_none)
    }

    fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        self.read_replica_or_primary(directory::local_authorities, Vec::is_empty)
    }

    fn care_setting(&self, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
        self.read_replica_or_primary(|c| directory::care_setting(c, ods), Option::is_none)
    }

    fn care_settings(&self) -> StoreResult<Vec<CareSetting>> {
        self.read_replica(directory::care_settings)
    }

    fn upsert_demographics(
        &self,
        entries: &[Demographics],
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        self.write(|c| directory::upsert_demographics(c, entries, now))
    }

    fn demographics(&self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        self.read_replica_or_primary(|c| directory::demographics(c, nhs), Option::is_none)
    }

    fn records_for(&self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        self.read_replica_or_primary(|c| records::records_for(c, nhs), Vec::is_empty)
    }

    fn la_record_count(&self, la: &OdsCode) -> StoreResult<u64> {
        self.read_replica(|c| records::la_record_count(c, la))
    }

    fn la_records(&self, la: &OdsCode, query: &RecordQuery) -> StoreResult<Vec<StoredRecord>> {
        self.read(|c| records::la_records(c, la, query))
    }

    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn begin_changes(&self) -> StoreResult<Box<dyn ChangesTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn purgeable_plans(&self) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>> {
        self.read(records::purgeable_plans)
    }

    fn purge(
        &self,
        plans: &[(OdsCode, NhsNumber, Plan)],
        audit: &AuditEntry,
    ) -> StoreResult<(u64, u64)> {
        self.write(|c| records::purge(c, plans, audit))
    }

    fn backup_to(&self, path: &std::path::Path) -> StoreResult<()> {
        self.backup_file(path)
    }

    fn unacknowledged_notifications(&self) -> StoreResult<u64> {
        self.read(outbox::unacknowledged)
    }

    fn outbox_stats(&self) -> StoreResult<Vec<crate::OutboxStats>> {
        self.read(outbox::outbox_stats)
    }

    fn add_webhook(&self, webhook: &Webhook, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| {
            outbox::add_webhook(c, webhook)?;
            audit::append_alone(c, entry)
        })
    }

    fn webhooks(&self, la: &OdsCode) -> StoreResult<Vec<Webhook>> {
        self.read(|c| outbox::webhooks(c, la))
    }

    fn remove_webhook(
        &self,
        la: &OdsCode,
        id: &str,
        now: DateTime<Utc>,
        entry: &AuditEntry,
    ) -> StoreResult<bool> {
        self.write(|c| {
            let removed = outbox::remove_webhook(c, la, id, now)?;
            if removed {
                audit::append_alone(c, entry)?;
            }
            Ok(removed)
        })
    }

    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.write(|c| outbox::claim_deliveries(c, now, lease_until, limit))
    }

    fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| outbox::delivery_succeeded(c, id, status, now))
    }

    fn delivery_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|c| outbox::delivery_failed(c, id, status, error, retry_at, now))
    }

    fn dead_deliveries(&self, limit: u32) -> StoreResult<Vec<DeadDelivery>> {
        self.read(|c| outbox::dead_deliveries(c, limit))
    }

    fn mesh_pending_notifications(&self, limit: u32) -> StoreResult<Vec<(Notification, String)>> {
        self.read(|c| outbox::mesh_pending_notifications(c, limit))
    }

    fn mesh_enqueue(
        &self,
        messages: &[NewMeshMessage],
        cursors: &[(OdsCode, u64)],
    ) -> StoreResult<usize> {
        self.write(|c| outbox::mesh_enqueue(c, messages, cursors))
    }

    fn mesh_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<MeshOutgoing>> {
        self.write(|c| outbox::mesh_claim(c, now, lease_until, limit))
    }

    fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| outbox::mesh_send_started(c, id, now))
    }

    fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| outbox::mesh_sent(c, id, message_id, now))
    }

    fn mesh_send_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(|c| outbox::mesh_send_failed(c, id, error, retry_at, now))
    }

    fn mesh_outbox(&self, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>> {
        self.read(|c| outbox::mesh_outbox(c, limit))
    }

    fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        self.read_replica(|c| outbox::recent_accesses(c, nhs, limit))
    }

    fn notifications(
        &self,
        la: &OdsCode,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read_replica(|c| outbox::notifications(c, la, after, limit))
    }

    fn acknowledge(
        &self,
        la: &OdsCode,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Ack> {
        self.write(|c| outbox::acknowledge(c, la, id, by, now))
    }

    fn notifications_newest(
        &self,
        la: &OdsCode,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read(|c| outbox::notifications_newest(c, la, before, limit))
    }

    fn create_user(&self, user: &User) -> StoreResult<()> {
        self.write(|c| identity::create_user(c, user))
    }

    fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        self.read(|c| identity::user_by_username(c, username))
    }

    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.read(|c| identity::user_by_id(c, id))
    }

    fn list_users(&self) -> StoreResult<Vec<User>> {
        self.read(identity::list_users)
    }

    fn update_user(&self, user: &User, now: DateTime<Utc>) -> StoreResult<()> {
        self.write(|c| identity::update_user(c, user, now))
    }

    fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        self.write(|c| identity::record_login_failure(c, user_id, max_failures, lock_until, now))
    }

    fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.write(|c| identity::clear_login_failures(c, user_id, now))
    }

    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        self.write(|c| identity::create_api_token(c, token))
    }

    fn change_identity(
        &self,
        change: &IdentityChange,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.write(|c| identity::change_identity(c, change, now, audit))
    }

    fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.read(|c| identity::user_by_token_hash(c, token_hash, now))
    }

    fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.write(|c| identity::create_session(c, session))
    }

    fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<(Session, User)>> {
        self.read(|c| identity::session(c, id_hash, now))
    }

    fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.write(|c| identity::delete_session(c, id_hash))
    }

    fn oauth_client(&self, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
        // The primary: a client just registered must authenticate at once.
        self.read(|c| identity::oauth_client(c, client_id))
    }

    fn oauth_clients(&self) -> StoreResult<Vec<OAuthClient>> {
        self.read(identity::oauth_clients)
    }

    fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write(|c| identity::use_assertion_jti(c, client_id, jti, expires_at, now))
    }

    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| audit::append_alone(c, entry))
    }

    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.read_replica(|c| audit::search(c, query))
    }

    fn audit_verify(&self) -> StoreResult<AuditVerification> {
        // One snapshot for the whole walk, so appends running meanwhile cannot make the log and
        // its head disagree.
        self.snapshot(audit::verify)
    }

    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn record_refused_upload(&self, summary: &UploadSummary) -> StoreResult<()> {
        self.write(|c| uploads::insert_summary(c, summary))
    }

    fn upload(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>> {
        // On the primary even with a replica: the engine reads summaries it has just written (a
        // replayed file's original, a held upload being confirmed) and acts on their status.
        self.read(|c| uploads::summary(c, la, id))
    }

    fn recent_uploads(&self, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
        // A list for people to read: the replica may lag by a moment.
        self.read_replica(|c| uploads::recent(c, la, limit))
    }

    fn upload_rows(
        &self,
        la: &OdsCode,
        id: &UploadId,
        filter: &RowFilter,
    ) -> StoreResult<Vec<RowResult>> {
        self.read_replica_or_primary(|c| uploads::rows(c, la, id, filter), Vec::is_empty)
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
    ) -> StoreResult<Vec<UploadOutcomeCounts>> {
        self.read_replica(|c| uploads::la_upload_stats(c, la, since))
    }
}
