//! [`Store`], declared and implemented once for every backend: each call is a shared query run
//! where the backend says (a read, on the replica if it may; a write transaction; a snapshot).

use super::{
    audit, demographics, directory, from_row, history, identities, outbox, records, uploads,
    Backend, Db, SqlTx,
};
use crate::{
    AuditQuery, AuditVerification, ChangesTx, DeadDelivery, DueDelivery, IdentityChange, LookupTx,
    LookupView, MeshOutboxEntry, MeshOutgoing, NewApiToken, NewMeshMessage, NotificationQuery,
    OAuthClient, OutboxStats, RecordQuery, RowFilter, Session, StoreCounts, StoreResult,
    StoredRecord, UploadTx, User, Webhook,
};
use chrono::{DateTime, Utc};
use cpis_domain::data_quality::UploadOutcomeCounts;
use cpis_domain::notification::{Ack, Acknowledgement, Assignment};
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::{
    Access, AuditEntry, AuditRecord, CareSetting, Demographics, LocalAuthority, NewNotification,
    NhsNumber, Notification, OdsCode, Plan,
};

/// `how: fn name(&self, args…) -> T => query;` declares the [`Store`] method `name` (returning
/// `StoreResult<T>`) and implements it as `query(conn, args…)` run through the backend's `how`
/// (`read`, `read_replica`, `write`, `snapshot`, or their `_logged` forms for what lookups write:
/// [`Backend::copy_in_logged_lookups`]), or `read_replica_or_primary` when `(missing)`
/// says when the replica's answer is not enough. `tx` opens a [`SqlTx`], `lookups` the backend's
/// lookup transaction; `backend` calls the
/// backend's own `query(self, args…)`. Every call but `tx` runs through [`super::off_async`].
macro_rules! store {
    (@ $self:ident, tx, $args:tt) => {
        Ok(Box::new(SqlTx::new($self.begin()?)))
    };
    (@ $self:ident, lookups, $args:tt) => {
        Backend::begin_lookups($self)
    };
    (@ $self:ident, backend, ($($arg:ident),*), $query:path) => {
        super::off_async(|| $query($self $(, $arg)*))
    };
    (@ $self:ident, $how:ident ($missing:expr), ($($arg:ident),*), $query:path) => {
        super::off_async(|| $self.read_replica_or_primary(|c| $query(c $(, $arg)*), $missing))
    };
    (@ $self:ident, $how:ident, ($($arg:ident),*), $query:path) => {
        super::off_async(|| $self.$how(|c| $query(c $(, $arg)*)))
    };
    ($($(#[$doc:meta])* $how:ident $(($missing:expr))?: fn $name:ident(&self $(, $arg:ident: $ty:ty)*)
        -> $ret:ty $(=> $query:path)?;)*) => {
        /// The storage interface every backend implements. Calls block: async callers run them
        /// on a blocking thread.
        pub trait Store: Send + Sync {
            /// `sqlite` or `postgres`.
            fn backend(&self) -> &'static str;
            /// Whether lookups read their view on readers ([`Store::lookup_view`]) rather than
            /// in their group's transaction ([`LookupTx::view`]).
            fn views_on_readers(&self) -> bool;
            $($(#[$doc])* fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret>;)*
        }

        impl<B: Backend> Store for B {
            fn backend(&self) -> &'static str {
                self.name()
            }
            fn views_on_readers(&self) -> bool {
                Backend::views_on_readers(self)
            }
            $(fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                store!(@ self, $how $(($missing))?, ($($arg),*) $(, $query)?)
            })*
        }
    };
}

store! {
    /// A cheap query proving the database answers (readiness).
    read: fn ping(&self) -> () => ping;
    read_replica_logged: fn counts(&self) -> StoreCounts => counts;

    // Point reads that find nothing on a replica ask the primary. Upload summaries, held files,
    // users, tokens, sessions and OAuth clients are read on the primary: what was just written
    // (a replayed file's original, a client just registered) must be seen at once.

    // Directory.
    write: fn upsert_local_authorities(&self, las: &[LocalAuthority], now: DateTime<Utc>) -> usize
        => directory::upsert_local_authorities;
    write: fn upsert_care_settings(&self, settings: &[CareSetting], now: DateTime<Utc>) -> usize
        => directory::upsert_care_settings;
    read_replica(Option::is_none): fn local_authority(&self, ods: &OdsCode)
        -> Option<LocalAuthority> => directory::local_authority;
    read_replica(Vec::is_empty): fn local_authorities(&self) -> Vec<LocalAuthority>
        => directory::local_authorities;
    read_replica(Option::is_none): fn care_setting(&self, ods: &OdsCode) -> Option<CareSetting>
        => directory::care_setting;
    /// Every care setting, by ODS code (the admin directory page).
    read_replica: fn care_settings(&self) -> Vec<CareSetting> => directory::care_settings;

    // Demographics index.
    write: fn upsert_demographics(&self, entries: &[Demographics], now: DateTime<Utc>) -> usize
        => demographics::upsert_demographics;
    read_replica(Option::is_none): fn demographics(&self, nhs: NhsNumber) -> Option<Demographics>
        => demographics::demographics;

    // Records, read side.
    /// Every LA's record for this NHS number, with all plans (visibility is the caller's rule).
    /// A record's `sensitive` is evaluated now: the LA's mark OR the demographics index's
    /// current S-flag (a flag that arrives after the upload hides the history at once). None
    /// for a number the demographics index says was invalidated for adoption.
    read_replica(Vec::is_empty): fn records_for(&self, nhs: NhsNumber) -> Vec<StoredRecord>
        => records::records_for;
    /// Number of records an LA holds.
    /// Every record held against this number, whatever its demographic status (an LA's records
    /// of a number invalidated for adoption stay until it deletes them).
    read: fn records_held(&self, nhs: NhsNumber) -> Vec<StoredRecord> => records::records_held;
    read_replica: fn la_record_count(&self, la: &OdsCode) -> u64 => records::la_record_count;
    /// A page of the LA's own records (never another LA's), with their plans (the LA records
    /// page).
    read: fn la_records(&self, la: &OdsCode, query: &RecordQuery) -> Vec<StoredRecord>
        => records::la_records;

    // Lookups and notifications.
    /// Opens the write transaction a batch of lookups runs in: each lookup reads the child's
    /// records and writes its access and notifications in it, and all commit together, durably.
    /// On SQLite the group reads a snapshot and is made durable in the lookup log, copied in
    /// later, many lookups at once (`sqlite/lookup_spool.rs`).
    lookups: fn begin_lookups(&self) -> Box<dyn LookupTx + '_>;
    /// Copies spooled lookups into the database, up to a bounded batch in one transaction,
    /// waiting for the writer: how many were copied (0 when none wait; always 0 on PostgreSQL).
    backend: fn drain_lookup_spool(&self) -> u64 => Backend::drain_lookup_spool;
    /// What a lookup of `nhs` reads before its writes, in one snapshot: records, their LAs, the
    /// `history` most recent unscheduled accesses and the attendance up to the newest of them
    /// (on a backend whose [`Store::views_on_readers`]; [`LookupTx::view`] otherwise).
    snapshot_logged: fn lookup_view(&self, nhs: NhsNumber, history: usize, now: DateTime<Utc>)
        -> LookupView => history::lookup_view;
    /// [`Store::lookup_view`] of each child in `nhs`, in one snapshot, in the same order: what a
    /// reader reads for the lookups waiting at once.
    snapshot_logged: fn lookup_views(&self, nhs: &[NhsNumber], history: usize, now: DateTime<Utc>)
        -> Vec<LookupView> => history::lookup_views;
    /// A child's attendance in the windows ending `now` (what a lookup counts; here for the
    /// contract tests and read-only callers).
    read_logged: fn attendance(&self, nhs: NhsNumber, now: DateTime<Utc>)
        -> cpis_domain::attendance::Attendance => outbox::attendance;
    /// Opens the transaction a demographics change file is applied in.
    tx: fn begin_changes(&self) -> Box<dyn ChangesTx + '_>;

    // Retention.
    /// Every plan that can leave its visibility window (ended plans and UCPPs), with its LA and
    /// NHS number.
    read: fn purgeable_plans(&self) -> Vec<(OdsCode, NhsNumber, Plan)> => records::purgeable_plans;
    /// Deletes these plans if they are still exactly as listed (an upload may have changed them
    /// since), then the records left with no plan, and appends the audit entry; one transaction.
    /// Returns (plans deleted, records deleted).
    write_logged: fn purge(&self, plans: &[(OdsCode, NhsNumber, Plan)], audit: &AuditEntry) -> (u64, u64)
        => records::purge;

    // Operations.
    /// A consistent copy of the whole database in a new file (SQLite online backup).
    backend: fn backup_to(&self, path: &std::path::Path) -> () => Backend::backup_file;
    /// Notifications not yet acknowledged (outbox depth).
    read_logged: fn unacknowledged_notifications(&self) -> u64 => outbox::unacknowledged;
    /// Each push channel's outbox (webhook deliveries, MESH messages): how many are still to be
    /// delivered, since when the oldest waits, how many were given up on. For `/metrics`.
    read_logged: fn outbox_stats(&self) -> Vec<OutboxStats> => outbox::outbox_stats;

    // Webhook delivery (the outbox's push side).
    /// Adds a webhook and appends its audit entry, in one transaction.
    write: fn add_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> ()
        => outbox::add_webhook;
    read: fn webhooks(&self, la: &OdsCode) -> Vec<Webhook> => outbox::webhooks;
    /// Disables a webhook (its pending deliveries are not attempted again) and appends the audit
    /// entry, in one transaction. `false`, and no entry, when the LA has no such active webhook.
    write: fn remove_webhook(&self, la: &OdsCode, id: &str, now: DateTime<Utc>, audit: &AuditEntry)
        -> bool => outbox::remove_webhook;
    /// Claims up to `limit` deliveries due now: each is leased until `lease_until`, so another
    /// worker (on this or another server) does not send it meanwhile.
    write: fn claim_deliveries(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32)
        -> Vec<DueDelivery> => outbox::claim_deliveries;
    write: fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> ()
        => outbox::delivery_succeeded;
    /// Records a failed attempt: retry at `retry_at`, or give up (dead letter) when `None`.
    write: fn delivery_failed(&self, id: i64, status: Option<u16>, error: &str,
        retry_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> () => outbox::delivery_failed;
    read_logged: fn dead_deliveries(&self, limit: u32) -> Vec<DeadDelivery> => outbox::dead_deliveries;

    // MESH outbox (messages to LA mailboxes).
    /// Notifications of LAs that have a MESH mailbox, after each LA's MESH cursor, in cursor
    /// order per LA, with the mailbox: what the MESH worker has still to queue.
    read_logged: fn mesh_pending_notifications(&self, limit: u32) -> Vec<(Notification, String)>
        => outbox::mesh_pending_notifications;
    /// Queues messages (a local id already queued is left alone) and moves LA cursors forward
    /// (never back), in one transaction. Returns how many messages were new.
    write: fn mesh_enqueue(&self, messages: &[NewMeshMessage], cursors: &[(OdsCode, u64)]) -> usize
        => outbox::mesh_enqueue;
    /// Claims up to `limit` queued messages due now, leased until `lease_until`.
    write: fn mesh_claim(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32)
        -> Vec<MeshOutgoing> => outbox::mesh_claim;
    /// Records that a send is about to start: from now on its outcome is unknown until
    /// [`Store::mesh_sent`].
    write: fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> ()
        => outbox::mesh_send_started;
    write: fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> ()
        => outbox::mesh_sent;
    /// Records a failed attempt: retry at `retry_at`, or give up (dead letter) when `None`.
    write: fn mesh_send_failed(&self, id: i64, error: &str, retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>) -> () => outbox::mesh_send_failed;
    /// The outbox, newest first.
    read_logged: fn mesh_outbox(&self, limit: u32) -> Vec<MeshOutboxEntry> => outbox::mesh_outbox;
    /// The most recent unscheduled accesses to a child, newest first.
    read_replica_logged: fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> Vec<Access>
        => outbox::recent_accesses;
    /// A page of a child's whole unscheduled access history: up to `limit` accesses with a
    /// cursor after `after` (0: from the first), oldest first, each with its cursor (the LA's
    /// evidence export reads it page by page).
    read_replica_logged: fn access_history_page(&self, nhs: NhsNumber, after: u64, limit: u32)
        -> Vec<(u64, Access)> => history::access_history_page;
    /// An LA's notifications after the cursor (a `seq`), oldest first.
    read_replica_logged: fn notifications(&self, la: &OdsCode, after: u64, limit: u32) -> Vec<Notification>
        => outbox::notifications;
    /// Acknowledges one of the LA's notifications (idempotent).
    write_logged: fn acknowledge(&self, la: &OdsCode, id: &str, by: &str, now: DateTime<Utc>) -> Ack
        => outbox::acknowledge;
    /// Acknowledges one of the LA's notifications with who, when, outcome and note, and its
    /// audit entry, in one transaction: `acked` is appended with a first acknowledgement,
    /// `refused` when the notification is not the LA's (or does not exist), nothing with a
    /// repeat (the first acknowledgement's who, outcome and note stay). Neither is written
    /// without the other.
    write_logged: fn acknowledge_audited(&self, la: &OdsCode, id: &str, ack: &Acknowledgement,
        acked: &AuditEntry, refused: &AuditEntry) -> Ack => outbox::acknowledge_audited;
    /// Assigns one of the LA's notifications to a team or worker (replacing an earlier
    /// assignment) and appends `audit`, in one transaction; `false`, appending `refused`, when
    /// it is not the LA's.
    write_logged: fn assign_audited(&self, la: &OdsCode, id: &str, assignment: &Assignment,
        audit: &AuditEntry, refused: &AuditEntry) -> bool => outbox::assign_audited;
    /// A filtered page of an LA's notifications, after a cursor (oldest first) or in work-queue
    /// order (overdue, then frequent attendance, then newest). Read from the primary, so an
    /// acknowledgement or assignment just made shows.
    read_logged: fn notification_query(&self, la: &OdsCode, query: &NotificationQuery)
        -> Vec<Notification> => outbox::notification_query;
    /// Actionable notifications (every LA) created before `cutoff`, still unacknowledged and
    /// not escalated, oldest first.
    read_logged: fn overdue_unescalated(&self, cutoff: DateTime<Utc>, limit: u32) -> Vec<Notification>
        => outbox::overdue_unescalated;
    /// Marks notification `id` escalated and writes `escalation` (its one escalation
    /// notification, queued for webhooks like any) and `audit`, in one transaction, only if it
    /// is still unacknowledged and not escalated; `false`, writing nothing, otherwise (another
    /// server escalated it, or it was acknowledged meanwhile). An access notification's repeats
    /// (the same LA, child and setting, created after it and before `repeats_until`: one work
    /// item) still unacknowledged are marked escalated with it, so the item raises one escalation.
    write_logged: fn escalate(&self, id: &str, repeats_until: DateTime<Utc>, escalation: &NewNotification,
        audit: &AuditEntry) -> bool => outbox::escalate;
    /// An LA's notifications with a cursor below `before` (all when `None`), newest first (the
    /// web inbox). Read from the primary, so an acknowledgement just made shows.
    read_logged: fn notifications_newest(&self, la: &OdsCode, before: Option<u64>, limit: u32)
        -> Vec<Notification> => outbox::notifications_newest;

    // Identities.
    write: fn create_user(&self, user: &User) -> () => identities::create_user;
    read: fn user_by_username(&self, username: &str) -> Option<User> => identities::user_by_username;
    read: fn user_by_id(&self, id: &str) -> Option<User> => identities::user_by_id;
    read: fn list_users(&self) -> Vec<User> => identities::list_users;
    /// Replaces a user's mutable fields (display name, role, permissions, organisation,
    /// password hash, disabled, failed logins, lock).
    write: fn update_user(&self, user: &User, now: DateTime<Utc>) -> () => identities::update_user;
    /// Counts one failed password login, atomically in the database (parallel guesses each
    /// count): the `max_failures`-th consecutive failure locks the account until `lock_until`
    /// and restarts the count. Returns the account's lock after the change.
    write: fn record_login_failure(&self, user_id: &str, max_failures: u32,
        lock_until: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>>
        => identities::record_login_failure;
    /// After a good password: clears the failure count and an expired lock, unless the account
    /// is locked at `now` (a parallel failure may have locked it after it was read). Returns
    /// false, changing nothing, when it is locked.
    write: fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> bool
        => identities::clear_login_failures;
    write: fn create_api_token(&self, token: &NewApiToken) -> () => identities::create_api_token;
    /// Applies the change and appends the audit entry in one transaction: an administrative
    /// change is never written without its audit entry, and a change that fails (an existing
    /// username, an unknown user) appends nothing. `now` is the update time of an
    /// [`IdentityChange::UpdateUser`].
    write: fn change_identity(&self, change: &IdentityChange, now: DateTime<Utc>,
        audit: &AuditEntry) -> () => identities::change_identity;
    /// The (enabled or not) user an unexpired, unrevoked token digest belongs to.
    read: fn user_by_token_hash(&self, token_hash: &str, now: DateTime<Utc>) -> Option<User>
        => identities::user_by_token_hash;
    write: fn create_session(&self, session: &Session) -> () => identities::create_session;
    read: fn session(&self, id_hash: &str, now: DateTime<Utc>) -> Option<(Session, User)>
        => identities::session;
    write: fn delete_session(&self, id_hash: &str) -> () => identities::delete_session;
    /// An application-restricted client and the system identity it acts as.
    read: fn oauth_client(&self, client_id: &str) -> Option<(OAuthClient, User)>
        => identities::oauth_client;
    read: fn oauth_clients(&self) -> Vec<OAuthClient> => identities::oauth_clients;
    /// Records the `jti` of a client assertion until `expires_at`. `false` when the client
    /// already used it (a replay), whichever server saw it. Forgets expired ones.
    write: fn use_assertion_jti(&self, client_id: &str, jti: &str, expires_at: DateTime<Utc>,
        now: DateTime<Utc>) -> bool => identities::use_assertion_jti;

    // Audit.
    /// Appends one entry to the hash chain.
    write: fn append_audit(&self, entry: &AuditEntry) -> () => audit::append_alone;
    read_replica_logged: fn audit_search(&self, query: &AuditQuery) -> Vec<AuditRecord> => audit::search;
    /// Recomputes the whole chain.
    // One snapshot for the whole walk: appends meanwhile cannot make log and head disagree.
    snapshot_logged: fn audit_verify(&self) -> AuditVerification => audit::verify;

    // Uploads.
    /// Opens the one write transaction an upload is applied in. Dropping it without
    /// [`UploadTx::finish`] rolls everything back, including the upload's own row: an upload
    /// whose process dies leaves no trace and nothing applied.
    tx: fn begin_upload(&self) -> Box<dyn UploadTx + '_>;
    /// Records an upload that was refused as a whole (malformed file, unsupported version)
    /// without touching any record.
    write: fn record_refused_upload(&self, summary: &UploadSummary) -> ()
        => uploads::insert_summary;
    /// An upload, only if it belongs to `la`.
    read: fn upload(&self, la: &OdsCode, id: &UploadId) -> Option<UploadSummary>
        => uploads::summary;
    /// The LA's most recent uploads, newest first (the LA's upload page).
    read_replica: fn recent_uploads(&self, la: &OdsCode, limit: u32) -> Vec<UploadSummary>
        => uploads::recent;
    read_replica(Vec::is_empty): fn upload_rows(&self, la: &OdsCode, id: &UploadId,
        filter: &RowFilter) -> Vec<RowResult> => uploads::rows;
    /// How many uploads of `la` were applied after upload `id` was received.
    read: fn applied_uploads_since(&self, la: &OdsCode, id: &UploadId) -> u64
        => uploads::applied_since;
    /// The stored file of an upload held for confirmation.
    read: fn held_file(&self, la: &OdsCode, id: &UploadId) -> Option<Vec<u8>> => uploads::held_file;
    /// The record outcome counts of the LA's completed uploads received at or after `since`,
    /// oldest first (the data-quality report: see [`cpis_domain::data_quality`]).
    read_replica: fn la_upload_stats(&self, la: &OdsCode, since: DateTime<Utc>)
        -> Vec<UploadOutcomeCounts> => uploads::la_upload_stats;
}

fn ping(db: &mut dyn Db) -> StoreResult<()> {
    db.one("SELECT 1", &[]).map(|_| ())
}

fn counts(db: &mut dyn Db) -> StoreResult<StoreCounts> {
    let r = db.one(
        "SELECT (SELECT count(*) FROM local_authorities), (SELECT count(*) FROM care_settings),
                (SELECT count(*) FROM demographics), (SELECT count(*) FROM records),
                (SELECT count(*) FROM plans), (SELECT count(*) FROM uploads),
                (SELECT count(*) FROM accesses), (SELECT count(*) FROM notifications)",
        &[],
    )?;
    Ok(from_row!(r, 0 => StoreCounts {
        local_authorities, care_settings, demographics, records, plans, uploads, accesses,
        notifications
    }))
}
