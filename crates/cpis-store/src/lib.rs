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
mod deflate;
mod error;
mod la_query;
mod model;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use audit_chain::AuditVerification;
pub use cpis_domain::data_quality::{MatchCounts, UploadOutcomeCounts};
/// For tools and tests that read a SQLite database file directly.
pub use deflate::inflate_payload;
pub use error::{unavailable_errors, StoreError, StoreResult};
pub use la_query::{
    NotificationFilter, NotificationOrder, NotificationQuery, RecordQuery, RecordSearch,
};
pub use model::{
    AuditQuery, ClientKeys, DeadDelivery, DueBirthReminder, DueDelivery, IdentityChange,
    MeshOutboxEntry, MeshOutgoing, NewApiToken, NewMeshMessage, NewUpload, OAuthClient, RowFilter,
    Session, StoreCounts, StoredRecord, User, UserKind, Webhook,
};
pub use sql::Store;

use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::upload::RecordRow;
use cpis_domain::{
    Access, AuditEntry, Demographics, LocalAuthority, NewNotification, NhsNumber, OdsCode, PlanType,
};

/// What a lookup reads before its writes: on a reader while the lookups thread writes other
/// lookups ([`Store::lookup_view`]), or first thing in its group's transaction
/// ([`LookupTx::view`]), as the backend prefers ([`Store::views_on_readers`]).
#[derive(Debug, Clone, Default)]
pub struct LookupView {
    /// Every LA's record for the NHS number (visibility is the caller's rule).
    pub records: Vec<StoredRecord>,
    /// The directory entries of the records' LAs.
    pub local_authorities: Vec<LocalAuthority>,
    /// The most recent unscheduled accesses, newest first (none read without records).
    pub history: Vec<Access>,
    /// The child's attendance counted from the accesses up to `through`.
    pub attendance: cpis_domain::attendance::Tally,
    /// The newest unscheduled access (its `seq`) the view holds (0: none): later ones are read
    /// in the write transaction ([`LookupTx::unscheduled_after`]).
    pub through: i64,
}

impl LookupView {
    /// The history (newest first, at most `limit`) and the attendance once the accesses after
    /// the view are known (`since`, oldest first, from [`LookupTx::unscheduled_after`]): each of
    /// them counts in the attendance in the windows ending `now`, and all but the lookup's own
    /// (`own`, an access id) come before the view's history.
    pub fn complete(
        self,
        since: Vec<Access>,
        own: &str,
        limit: usize,
        now: DateTime<Utc>,
    ) -> (Vec<Access>, cpis_domain::attendance::Attendance) {
        let mut tally = self.attendance;
        for a in &since {
            tally.add(a, now);
        }
        let mut history: Vec<Access> = since.into_iter().rev().filter(|a| a.id != own).collect();
        history.extend(self.history);
        history.truncate(limit);
        (history, tally.attendance())
    }
}

/// The transaction a batch of lookups runs in (group commit). Dropping it without `commit`
/// rolls every lookup in it back.
pub trait LookupTx {
    /// What [`Store::lookup_view`] reads, read in this transaction (before its own writes).
    fn view(
        &mut self,
        nhs: NhsNumber,
        history: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<LookupView>;
    /// The child's unscheduled accesses after `through` (a [`LookupView`]'s), oldest first:
    /// those committed since the view was read, and this transaction's own.
    fn unscheduled_after(&mut self, nhs: NhsNumber, through: i64) -> StoreResult<Vec<Access>>;
    /// Reads the committed accesses after each (child, `through`) at once, for the
    /// [`LookupTx::unscheduled_after`] calls of the group that follow: on a backend where each
    /// statement is a round trip (PostgreSQL), one statement for the group. Nothing elsewhere.
    fn read_ahead(&mut self, _children: &[(NhsNumber, i64)]) -> StoreResult<()> {
        Ok(())
    }
    fn insert_access(&mut self, access: &Access) -> StoreResult<()>;
    fn insert_notification(&mut self, notification: &NewNotification) -> StoreResult<()>;
    /// Appends an audit entry inside this transaction.
    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    /// Whether the commit puts the writes in the tables (`false`: in SQLite's lookup log, from
    /// which [`Store::drain_lookup_spool`] copies them in, and whose caller tells consumers then).
    fn writes_tables(&self) -> bool {
        true
    }
    fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The transaction a demographics change file (or a birth-reminder run) is applied in: index
/// updates, record moves, `inactive-nhs-number`, `adoption-invalidation`, `birth` and
/// `birth-reminder` notifications and audit commit together.
pub trait ChangesTx {
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>>;
    fn upsert_demographics(&mut self, entry: &Demographics, now: DateTime<Utc>) -> StoreResult<()>;
    /// The records health sees for this number (none for a number invalidated for adoption).
    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>>;
    /// Every LA's record held against this number, whatever its demographic status.
    fn records_held(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>>;
    /// Remembers that a `birth` (`nhs` the baby's, `on_date` its date of birth) or
    /// `birth-reminder` (`nhs` the mother's, `on_date` the expected delivery date) notification
    /// goes to `la`: `false`, and nothing written, when it already went.
    fn mark_birth_notice(
        &mut self,
        kind: cpis_domain::NotificationKind,
        la: &OdsCode,
        nhs: NhsNumber,
        on_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The babies registered to this mother, oldest first.
    fn babies_of(&mut self, mother: NhsNumber) -> StoreResult<Vec<Demographics>>;
    /// Open UCPPs (no end date, or ending after `today`) with an expected delivery date on or
    /// before `edd_on_or_before`, not yet reminded for that date, whose LA holds no plan for a
    /// baby registered to the mother and born on or after the plan's start; mothers whose
    /// number is invalidated for adoption left out.
    fn due_birth_reminders(
        &mut self,
        edd_on_or_before: NaiveDate,
        today: NaiveDate,
    ) -> StoreResult<Vec<DueBirthReminder>>;
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

/// The single transaction an upload runs in: verification reads, record writes, row results and
/// the final summary commit together or not at all.
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
    ) -> StoreResult<std::collections::HashMap<NhsNumber, Demographics>>;
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
pub fn sqlite_path(url: &str) -> StoreResult<Option<&str>> {
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
