//! cpis storage. One interface ([`Store`], with [`UploadTx`] for the upload engine's single
//! transaction) and its implementations, chosen by the database URL. Each backend carries its own
//! migrations, embedded in the binary and run when the store opens.
//!
//! The SQLite backend is the embedded default (WAL, `synchronous=FULL`); the PostgreSQL backend
//! is for production, where several servers share one database.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod audit_chain;
mod error;
mod la_query;
mod model;
pub mod postgres;
mod sql;
pub mod sqlite;
pub mod testing;

pub use audit_chain::AuditVerification;
pub use cpis_domain::data_quality::{MatchCounts, UploadOutcomeCounts};
pub use error::{unavailable_errors, StoreError, StoreResult};
pub use la_query::{RecordQuery, RecordSearch};
pub use model::{
    AuditQuery, ClientKeys, DeadDelivery, DueDelivery, IdentityChange, MeshOutboxEntry,
    MeshOutgoing, NewApiToken, NewMeshMessage, NewUpload, OAuthClient, RowFilter, Session,
    StoreCounts, StoredRecord, User, UserKind, Webhook,
};

use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::notification::Ack;
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::upload::RecordRow;
use cpis_domain::{
    Access, AuditEntry, AuditRecord, CareSetting, Demographics, LocalAuthority, NewNotification,
    NhsNumber, Notification, OdsCode, Plan, PlanType,
};

/// The storage interface every backend implements. Calls block: async callers run them on a
/// blocking thread.
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// A cheap query proving the database answers (readiness).
    fn ping(&self) -> StoreResult<()>;
    fn counts(&self) -> StoreResult<StoreCounts>;

    // Directory.
    fn upsert_local_authorities(
        &self,
        las: &[LocalAuthority],
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
    fn upsert_care_settings(
        &self,
        settings: &[CareSetting],
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
    fn local_authority(&self, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>>;
    fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>>;
    fn care_setting(&self, ods: &OdsCode) -> StoreResult<Option<CareSetting>>;
    /// Every care setting, by ODS code (the admin directory page).
    fn care_settings(&self) -> StoreResult<Vec<CareSetting>>;

    // Demographics index.
    fn upsert_demographics(
        &self,
        entries: &[Demographics],
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
    fn demographics(&self, nhs: NhsNumber) -> StoreResult<Option<Demographics>>;

    // Records, read side.
    /// Every LA's record for this NHS number, with all plans (visibility is the caller's rule).
    /// A record's `sensitive` is evaluated now: the LA's mark OR the demographics index's
    /// current S-flag (a flag that arrives after the upload hides the history at once).
    fn records_for(&self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>>;
    /// Number of records an LA holds.
    fn la_record_count(&self, la: &OdsCode) -> StoreResult<u64>;
    /// A page of the LA's own records (never another LA's), with their plans (the LA records
    /// page).
    fn la_records(&self, la: &OdsCode, query: &RecordQuery) -> StoreResult<Vec<StoredRecord>>;

    // Lookups and notifications.
    /// Opens the write transaction a batch of lookups runs in: each lookup reads the child's
    /// records and writes its access and notifications in it, and all commit together.
    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>>;
    /// Opens the transaction a demographics change file is applied in.
    fn begin_changes(&self) -> StoreResult<Box<dyn ChangesTx + '_>>;

    // Retention.
    /// Every plan that can leave its visibility window (ended plans and UCPPs), with its LA and
    /// NHS number.
    fn purgeable_plans(&self) -> StoreResult<Vec<(OdsCode, NhsNumber, Plan)>>;
    /// Deletes these plans if they are still exactly as listed (an upload may have changed them
    /// since), then the records left with no plan, and appends the audit entry; one transaction.
    /// Returns (plans deleted, records deleted).
    fn purge(
        &self,
        plans: &[(OdsCode, NhsNumber, Plan)],
        audit: &AuditEntry,
    ) -> StoreResult<(u64, u64)>;

    // Operations.
    /// A consistent copy of the whole database in a new file (SQLite online backup).
    fn backup_to(&self, path: &std::path::Path) -> StoreResult<()>;
    /// Notifications not yet acknowledged (outbox depth).
    fn unacknowledged_notifications(&self) -> StoreResult<u64>;
    /// Each push channel's outbox (webhook deliveries, MESH messages): how many are still to be
    /// delivered, since when the oldest waits, how many were given up on. For `/metrics`.
    fn outbox_stats(&self) -> StoreResult<Vec<OutboxStats>>;

    // Webhook delivery (the outbox's push side).
    /// Adds a webhook and appends its audit entry, in one transaction.
    fn add_webhook(&self, webhook: &Webhook, audit: &AuditEntry) -> StoreResult<()>;
    fn webhooks(&self, la: &OdsCode) -> StoreResult<Vec<Webhook>>;
    /// Disables a webhook (its pending deliveries are not attempted again) and appends the audit
    /// entry, in one transaction. `false`, and no entry, when the LA has no such active webhook.
    fn remove_webhook(
        &self,
        la: &OdsCode,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Claims up to `limit` deliveries due now: each is leased until `lease_until`, so another
    /// worker (on this or another server) does not send it meanwhile.
    fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;
    fn delivery_succeeded(&self, id: i64, status: u16, now: DateTime<Utc>) -> StoreResult<()>;
    /// Records a failed attempt: retry at `retry_at`, or give up (dead letter) when `None`.
    fn delivery_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    fn dead_deliveries(&self, limit: u32) -> StoreResult<Vec<DeadDelivery>>;

    // MESH outbox (messages to LA mailboxes).
    /// Notifications of LAs that have a MESH mailbox, after each LA's MESH cursor, in cursor
    /// order per LA, with the mailbox: what the MESH worker has still to queue.
    fn mesh_pending_notifications(&self, limit: u32) -> StoreResult<Vec<(Notification, String)>>;
    /// Queues messages (a local id already queued is left alone) and moves LA cursors forward
    /// (never back), in one transaction. Returns how many messages were new.
    fn mesh_enqueue(
        &self,
        messages: &[NewMeshMessage],
        cursors: &[(OdsCode, u64)],
    ) -> StoreResult<usize>;
    /// Claims up to `limit` queued messages due now, leased until `lease_until`.
    fn mesh_claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<MeshOutgoing>>;
    /// Records that a send is about to start: from now on its outcome is unknown until
    /// [`Store::mesh_sent`].
    fn mesh_send_started(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()>;
    fn mesh_sent(&self, id: i64, message_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Records a failed attempt: retry at `retry_at`, or give up (dead letter) when `None`.
    fn mesh_send_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The outbox, newest first.
    fn mesh_outbox(&self, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>>;
    /// The most recent unscheduled accesses to a child, newest first.
    fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>>;
    /// An LA's notifications after the cursor (a `seq`), oldest first.
    fn notifications(&self, la: &OdsCode, after: u64, limit: u32)
        -> StoreResult<Vec<Notification>>;
    /// Acknowledges one of the LA's notifications (idempotent).
    fn acknowledge(&self, la: &OdsCode, id: &str, by: &str, now: DateTime<Utc>)
        -> StoreResult<Ack>;
    /// An LA's notifications with a cursor below `before` (all when `None`), newest first (the
    /// web inbox). Read from the primary, so an acknowledgement just made shows.
    fn notifications_newest(
        &self,
        la: &OdsCode,
        before: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;

    // Identities.
    fn create_user(&self, user: &User) -> StoreResult<()>;
    fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Replaces a user's mutable fields (display name, role, permissions, organisation,
    /// password hash, disabled, failed logins, lock).
    fn update_user(&self, user: &User, now: DateTime<Utc>) -> StoreResult<()>;
    /// Counts one failed password login, atomically in the database (parallel guesses each
    /// count): the `max_failures`-th consecutive failure locks the account until `lock_until`
    /// and restarts the count. Returns the account's lock after the change.
    fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>>;
    /// After a good password: clears the failure count and an expired lock, unless the account
    /// is locked at `now` (a parallel failure may have locked it after it was read). Returns
    /// false, changing nothing, when it is locked.
    fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()>;
    /// Applies the change and appends the audit entry in one transaction: an administrative
    /// change is never written without its audit entry, and a change that fails (an existing
    /// username, an unknown user) appends nothing. `now` is the update time of an
    /// [`IdentityChange::UpdateUser`].
    fn change_identity(
        &self,
        change: &IdentityChange,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// The (enabled or not) user an unexpired, unrevoked token digest belongs to.
    fn user_by_token_hash(&self, token_hash: &str, now: DateTime<Utc>)
        -> StoreResult<Option<User>>;
    fn create_session(&self, session: &Session) -> StoreResult<()>;
    fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<(Session, User)>>;
    fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// An application-restricted client and the system identity it acts as.
    fn oauth_client(&self, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>>;
    fn oauth_clients(&self) -> StoreResult<Vec<OAuthClient>>;
    /// Records the `jti` of a client assertion until `expires_at`. `false` when the client
    /// already used it (a replay), whichever server saw it. Forgets expired ones.
    fn use_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    // Audit.
    /// Appends one entry to the hash chain.
    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Recomputes the whole chain.
    fn audit_verify(&self) -> StoreResult<AuditVerification>;

    // Uploads.
    /// Opens the one write transaction an upload is applied in. Dropping it without
    /// [`UploadTx::finish`] rolls everything back, including the upload's own row: an upload
    /// whose process dies leaves no trace and nothing applied.
    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>>;
    /// Records an upload that was refused as a whole (malformed file, unsupported version)
    /// without touching any record.
    fn record_refused_upload(&self, summary: &UploadSummary) -> StoreResult<()>;
    /// An upload, only if it belongs to `la`.
    fn upload(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>>;
    /// The LA's most recent uploads, newest first (the LA's upload page).
    fn recent_uploads(&self, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>>;
    fn upload_rows(
        &self,
        la: &OdsCode,
        id: &UploadId,
        filter: &RowFilter,
    ) -> StoreResult<Vec<RowResult>>;
    /// How many uploads of `la` were applied after upload `id` was received.
    fn applied_uploads_since(&self, la: &OdsCode, id: &UploadId) -> StoreResult<u64>;
    /// The stored file of an upload held for confirmation.
    fn held_file(&self, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>>;
    /// The record outcome counts of the LA's completed uploads received at or after `since`,
    /// oldest first (the data-quality report: see [`cpis_domain::data_quality`]).
    fn la_upload_stats(
        &self,
        la: &OdsCode,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<UploadOutcomeCounts>>;
}

/// The transaction a batch of lookups runs in (group commit). Dropping it without `commit`
/// rolls every lookup in it back.
pub trait LookupTx {
    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>>;
    fn local_authority(&mut self, ods: &OdsCode) -> StoreResult<Option<LocalAuthority>>;
    fn recent_accesses(&mut self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>>;
    fn insert_access(&mut self, access: &Access) -> StoreResult<()>;
    fn insert_notification(&mut self, notification: &NewNotification) -> StoreResult<()>;
    /// Appends an audit entry inside this transaction.
    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The single transaction an upload runs in: verification reads, record writes, row results and
/// the final summary commit together or not at all.
/// The transaction a demographics change file is applied in: index updates, record moves,
/// `inactive-nhs-number` notifications and audit commit together.
pub trait ChangesTx {
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>>;
    fn upsert_demographics(&mut self, entry: &Demographics, now: DateTime<Utc>) -> StoreResult<()>;
    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>>;
    /// Moves every record held against `from` to `to`. Where an LA already holds a record for
    /// `to`, the plans it lacks move across and the old record goes. Returns the LAs whose
    /// records moved.
    fn move_records(
        &mut self,
        from: NhsNumber,
        to: NhsNumber,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<OdsCode>>;
    fn insert_notification(&mut self, notification: &NewNotification) -> StoreResult<()>;
    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// What a confirm found when it claimed a held upload inside the applying transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldClaim {
    /// Still held and not stale: the confirm applies it.
    Claimed,
    /// Not (or no longer) held: another confirm applied it, or it never was held.
    NotHeld,
    /// A later upload of the LA was applied since it was held: applying it would undo that.
    Stale,
}

pub trait UploadTx {
    /// Registers a new upload (status `processing`) inside this transaction.
    fn insert_upload(&mut self, upload: &NewUpload) -> StoreResult<()>;
    /// An upload of this LA that already counts with the same file id or the same content.
    fn find_effective_duplicate(
        &mut self,
        la: &OdsCode,
        file_id: &str,
        content_sha256: &str,
        except: &UploadId,
    ) -> StoreResult<Option<UploadId>>;
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>>;
    /// The index entries of many NHS numbers at once (absent numbers are simply missing).
    fn demographics_many(
        &mut self,
        nhs: &[NhsNumber],
    ) -> StoreResult<std::collections::HashMap<NhsNumber, Demographics>> {
        let mut found = std::collections::HashMap::with_capacity(nhs.len());
        for n in nhs {
            if let Some(d) = self.demographics(*n)? {
                found.insert(*n, d);
            }
        }
        Ok(found)
    }
    /// Whether the LA holds this record (or this plan of it).
    fn has_record(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool>;
    fn add_row_result(&mut self, upload: &UploadId, result: &RowResult) -> StoreResult<()>;
    /// Claims a held upload for confirmation inside this transaction, after the LA's upload lock
    /// is held: it must still be held and no later upload of the LA may have been applied. On
    /// `Claimed` its earlier row results are removed (it is processed again); otherwise nothing
    /// changes. Two confirms of one upload are serialised by the lock: the second sees the first's
    /// outcome and answers `NotHeld`.
    fn claim_held(&mut self, la: &OdsCode, upload: &UploadId) -> StoreResult<HeldClaim>;
    /// Inserts or updates the LA's record and the row's plan. The plan takes the row's
    /// sensitive mark (`Unstated` keeps an existing plan's); the record is sensitive while any
    /// of its plans is marked.
    fn upsert(
        &mut self,
        la: &OdsCode,
        row: &RecordRow,
        upload: &UploadId,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The children whose record lost the LA's sensitive mark in this transaction (an explicit
    /// `false` on its last marked plan, or that plan deleted), for the audit. Writes what is
    /// pending first.
    fn sensitive_marks_removed(&mut self) -> StoreResult<Vec<NhsNumber>>;
    /// Deletes the LA's record, or one plan of it (and the record when no plan is left).
    fn delete(&mut self, la: &OdsCode, nhs: NhsNumber, plan: Option<PlanType>)
        -> StoreResult<bool>;
    /// The LA's plans open on `as_of` (no end date, or ending after it).
    fn open_plans(
        &mut self,
        la: &OdsCode,
        as_of: NaiveDate,
    ) -> StoreResult<Vec<(NhsNumber, PlanType)>>;
    fn end_plan(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: PlanType,
        end: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Appends an audit entry inside this transaction.
    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    /// Writes the final summary (and the file, for a held upload) and commits.
    fn finish(
        self: Box<Self>,
        summary: &UploadSummary,
        held_file: Option<&[u8]>,
    ) -> StoreResult<()>;
}

/// One push channel's outbox at a moment ([`Store::outbox_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStats {
    /// `webhook` or `mesh`.
    pub channel: &'static str,
    /// Not yet delivered and not given up on (webhook deliveries of disabled webhooks excluded:
    /// they are not attempted again).
    pub pending: u64,
    /// When the oldest pending one was queued.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Given up on (dead letters).
    pub dead: u64,
}

/// Whether opening a SQLite database may create its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create and migrate an empty database (`serve`, `migrate`, the explicit load commands).
    Create,
    /// Refuse: a command that reads must not answer from an empty database it just invented.
    Refuse,
}

/// Where a database URL points: PostgreSQL, or a SQLite file path. Unknown schemes are refused
/// by name rather than read as file names.
fn sqlite_path(url: &str) -> StoreResult<Option<&str>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(None);
    }
    let path = match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(path) => path,
        None => match url.split_once("://") {
            Some((scheme, _)) => {
                return Err(StoreError::Config(format!(
                    "unsupported database scheme '{scheme}': use sqlite://PATH or postgres://…"
                )))
            }
            None => url,
        },
    };
    if path.is_empty() {
        return Err(StoreError::Config("database URL names no file".into()));
    }
    Ok(Some(path))
}

/// Opens the store a database URL names: `postgres://…` or `postgresql://…` for PostgreSQL;
/// `sqlite://PATH`, `sqlite:PATH` or a bare file path for SQLite, creating the file if missing.
pub fn open(url: &str) -> StoreResult<Box<dyn Store>> {
    open_as(url, IfMissing::Create)
}

/// As [`open`], but a SQLite file that does not exist is refused with a clear error.
pub fn open_existing(url: &str) -> StoreResult<Box<dyn Store>> {
    open_as(url, IfMissing::Refuse)
}

fn open_as(url: &str, missing: IfMissing) -> StoreResult<Box<dyn Store>> {
    let Some(path) = sqlite_path(url)? else {
        return Ok(Box::new(crate::postgres::PgStore::open(url)?));
    };
    let file = std::path::Path::new(path);
    if !file.exists() {
        let folder = file.parent().filter(|f| !f.as_os_str().is_empty());
        if let Some(folder) = folder.filter(|f| !f.is_dir()) {
            return Err(StoreError::Config(format!(
                "folder {} does not exist: create it for the database file {}",
                folder.display(),
                file.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
        if missing == IfMissing::Refuse {
            return Err(StoreError::Config(format!(
                "there is no database at {path}: check --database (cpis migrate or cpis serve creates one)"
            )));
        }
    }
    Ok(Box::new(sqlite::SqliteStore::open(path)?))
}

/// As [`open`], with an optional read replica for PostgreSQL (see
/// [`postgres::PgStore::open_with_replica`]: read-only queries outside transactions may go to it,
/// everything else stays on the primary). SQLite has no replicas: a replica URL is ignored with a
/// warning. A replica must be a PostgreSQL URL.
pub fn open_with_replica(url: &str, replica_url: Option<&str>) -> StoreResult<Box<dyn Store>> {
    open_with_replica_as(url, replica_url, IfMissing::Create)
}

/// As [`open_with_replica`], saying whether a missing SQLite file may be created.
pub fn open_with_replica_as(
    url: &str,
    replica_url: Option<&str>,
    missing: IfMissing,
) -> StoreResult<Box<dyn Store>> {
    let Some(replica) = replica_url.filter(|r| !r.trim().is_empty()) else {
        return open_as(url, missing);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        tracing::warn!("a read replica is only used with PostgreSQL; the SQLite store ignores it");
        return open_as(url, missing);
    }
    if !(replica.starts_with("postgres://") || replica.starts_with("postgresql://")) {
        return Err(StoreError::Config(
            "the read replica URL must be a postgres:// URL".into(),
        ));
    }
    Ok(Box::new(crate::postgres::PgStore::open_with_replica(
        url, replica,
    )?))
}
