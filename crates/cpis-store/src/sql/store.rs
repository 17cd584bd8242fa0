//! [`Store`] for every backend, written once: each call is a shared query run where the backend
//! says (a read, on the replica if it may; a write transaction; a snapshot).

use super::{audit, directory, identity, outbox, records, uploads, Backend, SqlTx};
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

/// `how: fn name(&self, args…) -> T => query;` is the trait method running `query(conn, args…)`
/// through the backend's `how` (`read`, `read_replica`, `write`, `snapshot`), or
/// `read_replica_or_primary` when `(missing)` says when the replica's answer is not enough.
macro_rules! routed {
    ($($how:ident $(($missing:expr))?: fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty
        => $query:path;)*) => {$(
        fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
            routed!(@ self, $how $(($missing))?, |c| $query(c $(, $arg)*))
        }
    )*};
    (@ $self:ident, $how:ident, $f:expr) => { $self.$how($f) };
    (@ $self:ident, $how:ident ($missing:expr), $f:expr) => {
        $self.read_replica_or_primary($f, $missing)
    };
}

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

    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn begin_changes(&self) -> StoreResult<Box<dyn ChangesTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }

    fn backup_to(&self, path: &std::path::Path) -> StoreResult<()> {
        self.backup_file(path)
    }

    fn add_webhook(&self, webhook: &Webhook, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| {
            outbox::add_webhook(c, webhook)?;
            audit::append_alone(c, entry)
        })
    }

    /// No entry when nothing was removed.
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

    fn acknowledge_audited(
        &self,
        la: &OdsCode,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
        acked: &AuditEntry,
        refused: &AuditEntry,
    ) -> StoreResult<Ack> {
        self.write(|c| {
            let ack = outbox::acknowledge(c, la, id, by, now)?;
            match ack {
                Ack::Acknowledged(_) => audit::append_alone(c, acked)?,
                Ack::NotFound => audit::append_alone(c, refused)?,
                Ack::AlreadyAcknowledged(_) => {}
            }
            Ok(ack)
        })
    }

    // Point reads that find nothing on a replica ask the primary. Upload summaries, held files,
    // users, tokens, sessions and OAuth clients are read on the primary: what was just written
    // (a replayed file's original, a client just registered) must be seen at once.
    routed! {
        write: fn upsert_local_authorities(&self, las: &[LocalAuthority], now: DateTime<Utc>) -> usize
            => directory::upsert_local_authorities;
        write: fn upsert_care_settings(&self, settings: &[CareSetting], now: DateTime<Utc>) -> usize
            => directory::upsert_care_settings;
        read_replica(Option::is_none): fn local_authority(&self, ods: &OdsCode) -> Option<LocalAuthority>
            => directory::local_authority;
        read_replica(Vec::is_empty): fn local_authorities(&self) -> Vec<LocalAuthority>
            => directory::local_authorities;
        read_replica(Option::is_none): fn care_setting(&self, ods: &OdsCode) -> Option<CareSetting>
            => directory::care_setting;
        read_replica: fn care_settings(&self) -> Vec<CareSetting> => directory::care_settings;
        write: fn upsert_demographics(&self, entries: &[Demographics], now: DateTime<Utc>) -> usize
            => directory::upsert_demographics;
        read_replica(Option::is_none): fn demographics(&self, nhs: NhsNumber) -> Option<Demographics>
            => directory::demographics;
        read_replica(Vec::is_empty): fn records_for(&self, nhs: NhsNumber) -> Vec<StoredRecord>
            => records::records_for;
        read_replica: fn la_record_count(&self, la: &OdsCode) -> u64 => records::la_record_count;
        read: fn la_records(&self, la: &OdsCode, query: &RecordQuery) -> Vec<StoredRecord>
            => records::la_records;
        read: fn purgeable_plans(&self) -> Vec<(OdsCode, NhsNumber, Plan)> => records::purgeable_plans;
        write: fn purge(&self, plans: &[(OdsCode, NhsNumber, Plan)], audit: &AuditEntry) -> (u64, u64)
            => records::purge;
        read: fn unacknowledged_notifications(&self) -> u64 => outbox::unacknowledged;
        read: fn outbox_stats(&self) -> Vec<OutboxStats> => outbox::outbox_stats;
        read: fn webhooks(&self, la: &OdsCode) -> Vec<Webhook> => outbox::webhooks;
        write: fn claim_deliveries(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32)
            -> Vec<DueDelivery> => outbox::claim_deliveries;
        write: fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> ()
            => outbox::delivery_succeeded;
        write: fn delivery_failed(&self, id: i64, status: Option<u16>, error: &str,
            retry_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> () => outbox::delivery_failed;
        read: fn dead_deliveries(&self, limit: u32) -> Vec<DeadDelivery> => outbox::dead_deliveries;
        read: fn mesh_pending_notifications(&self, limit: u32) -> Vec<(Notification, String)>
            => outbox::mesh_pending_notifications;
        write: fn mesh_enqueue(&self, messages: &[NewMeshMessage], cursors: &[(OdsCode, u64)]) -> usize
            => outbox::mesh_enqueue;
        write: fn mesh_claim(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32)
            -> Vec<MeshOutgoing> => outbox::mesh_claim;
        write: fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> () => outbox::mesh_send_started;
        write: fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> () => outbox::mesh_sent;
        write: fn mesh_send_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>,
            now: DateTime<Utc>) -> () => outbox::mesh_send_failed;
        read: fn mesh_outbox(&self, limit: u32) -> Vec<MeshOutboxEntry> => outbox::mesh_outbox;
        read_replica: fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> Vec<Access>
            => outbox::recent_accesses;
        read_replica: fn notifications(&self, la: &OdsCode, after: u64, limit: u32) -> Vec<Notification>
            => outbox::notifications;
        write: fn acknowledge(&self, la: &OdsCode, id: &str, by: &str, now: DateTime<Utc>) -> Ack
            => outbox::acknowledge;
        read: fn notifications_newest(&self, la: &OdsCode, before: Option<u64>, limit: u32)
            -> Vec<Notification> => outbox::notifications_newest;
        write: fn create_user(&self, user: &User) -> () => identity::create_user;
        read: fn user_by_username(&self, username: &str) -> Option<User> => identity::user_by_username;
        read: fn user_by_id(&self, id: &str) -> Option<User> => identity::user_by_id;
        read: fn list_users(&self) -> Vec<User> => identity::list_users;
        write: fn update_user(&self, user: &User, now: DateTime<Utc>) -> () => identity::update_user;
        write: fn record_login_failure(&self, user_id: &str, max_failures: u32, lock_until: DateTime<Utc>,
            now: DateTime<Utc>) -> Option<DateTime<Utc>> => identity::record_login_failure;
        write: fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> bool
            => identity::clear_login_failures;
        write: fn create_api_token(&self, token: &NewApiToken) -> () => identity::create_api_token;
        write: fn change_identity(&self, change: &IdentityChange, now: DateTime<Utc>, audit: &AuditEntry)
            -> () => identity::change_identity;
        read: fn user_by_token_hash(&self, token_hash: &str, now: DateTime<Utc>) -> Option<User>
            => identity::user_by_token_hash;
        write: fn create_session(&self, session: &Session) -> () => identity::create_session;
        read: fn session(&self, id_hash: &str, now: DateTime<Utc>) -> Option<(Session, User)>
            => identity::session;
        write: fn delete_session(&self, id_hash: &str) -> () => identity::delete_session;
        read: fn oauth_client(&self, client_id: &str) -> Option<(OAuthClient, User)>
            => identity::oauth_client;
        read: fn oauth_clients(&self) -> Vec<OAuthClient> => identity::oauth_clients;
        write: fn use_assertion_jti(&self, client_id: &str, jti: &str, expires_at: DateTime<Utc>,
            now: DateTime<Utc>) -> bool => identity::use_assertion_jti;
        write: fn append_audit(&self, entry: &AuditEntry) -> () => audit::append_alone;
        read_replica: fn audit_search(&self, query: &AuditQuery) -> Vec<AuditRecord> => audit::search;
        // One snapshot for the whole walk: appends meanwhile cannot make log and head disagree.
        snapshot: fn audit_verify(&self) -> AuditVerification => audit::verify;
        write: fn record_refused_upload(&self, summary: &UploadSummary) -> () => uploads::insert_summary;
        read: fn upload(&self, la: &OdsCode, id: &UploadId) -> Option<UploadSummary> => uploads::summary;
        read_replica: fn recent_uploads(&self, la: &OdsCode, limit: u32) -> Vec<UploadSummary>
            => uploads::recent;
        read_replica(Vec::is_empty): fn upload_rows(&self, la: &OdsCode, id: &UploadId, filter: &RowFilter)
            -> Vec<RowResult> => uploads::rows;
        read: fn applied_uploads_since(&self, la: &OdsCode, id: &UploadId) -> u64 => uploads::applied_since;
        read: fn held_file(&self, la: &OdsCode, id: &UploadId) -> Option<Vec<u8>> => uploads::held_file;
        read_replica: fn la_upload_stats(&self, la: &OdsCode, since: DateTime<Utc>)
            -> Vec<UploadOutcomeCounts> => uploads::la_upload_stats;
    }
}
