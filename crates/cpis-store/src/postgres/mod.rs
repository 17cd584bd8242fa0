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

mod audit;
mod bulk;
mod care_settings;
mod convert;
mod directory;
mod la_records;
mod lifecycle;
mod lookups;
mod mesh;
mod migrations;
mod pool;
mod records;
mod replica;
mod security;
mod stats;
mod testing;
mod uploads;
mod webhooks;

pub use testing::TempDatabase;

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
use pool::{Conn, Pool};
use std::str::FromStr;
use std::time::Duration;

/// Most connections one store opens.
const POOL_MAX: usize = 16;
/// How long a caller waits for a free connection before the store reports itself unavailable.
const POOL_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

impl PgStore {
    /// Connects to the database a `postgres://` URL names and brings its schema up to date (once,
    /// under an advisory lock, however many servers start together).
    pub fn open(url: &str) -> StoreResult<Self> {
        let pool = Pool::new(connection_config(url)?, POOL_MAX, POOL_WAIT);
        let mut conn = pool.connect()?;
        migrations::run(&mut conn)?;
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
        self.read(migrations::current_version)
    }

    /// Runs `f` on a pooled connection outside any explicit transaction.
    fn read<T>(&self, f: impl FnOnce(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }

    /// Runs the read-only `f` on the replica if there is one (and it answers), else on the
    /// primary. The answer may trail the primary by the replication lag.
    fn read_replica<T>(&self, f: impl Fn(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        if let Some(v) = self.replica.as_ref().and_then(|r| r.try_read(&f)) {
            return Ok(v);
        }
        self.read(f)
    }

    /// As [`PgStore::read_replica`], asking the primary too when the replica's answer is
    /// `missing`: what was just written on the primary is never reported absent.
    fn read_replica_or_primary<T>(
        &self,
        f: impl Fn(&mut Conn) -> StoreResult<T>,
        missing: impl Fn(&T) -> bool,
    ) -> StoreResult<T> {
        if let Some(v) = self.replica.as_ref().and_then(|r| r.try_read(&f)) {
            if !missing(&v) {
                return Ok(v);
            }
        }
        self.read(f)
    }

    /// Runs `f` in a transaction: committed when it returns `Ok`, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        self.transaction("BEGIN", f)
    }

    fn transaction<T>(
        &self,
        begin: &str,
        f: impl FnOnce(&mut Conn) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        conn.batch(begin)?;
        match f(&mut conn) {
            Ok(v) => {
                if let Err(e) = conn.batch("COMMIT") {
                    conn.discard();
                    return Err(e);
                }
                Ok(v)
            }
            Err(e) => {
                if conn.batch("ROLLBACK").is_err() {
                    conn.discard();
                }
                Err(e)
            }
        }
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_one("SELECT 1", &[]).map(|_| ()))
    }

    fn counts(&self) -> StoreResult<StoreCounts> {
        self.read_replica(|c| {
            let r = c.query_one(
                "SELECT (SELECT count(*) FROM local_authorities), (SELECT count(*) FROM care_settings),
                        (SELECT count(*) FROM demographics), (SELECT count(*) FROM records),
                        (SELECT count(*) FROM plans), (SELECT count(*) FROM uploads),
                        (SELECT count(*) FROM accesses), (SELECT count(*) FROM notifications)",
                &[],
            )?;
            let n = |i: usize| -> StoreResult<u64> { Ok(r.try_get::<_, i64>(i)? as u64) };
            Ok(StoreCounts {
                local_authorities: n(0)?,
                care_settings: n(1)?,
                demographics: n(2)?,
                records: n(3)?,
                plans: n(4)?,
                uploads: n(5)?,
                accesses: n(6)?,
                notifications: n(7)?,
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

    fn care_settings(&self) -> StoreResult<Vec<CareSetting>> {
        self.read_replica(care_settings::care_settings)
    }

    fn care_setting(&self, ods: &OdsCode) -> StoreResult<Option<CareSetting>> {
        self.read_replica_or_primary(|c| directory::care_setting(c, ods), Option::is_none)
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

    fn begin_changes(&self) -> StoreResult<Box<dyn crate::ChangesTx + '_>> {
        Ok(Box::new(lifecycle::PgChangesTx::begin(self.pool.get()?)?))
    }

    fn purgeable_plans(&self) -> StoreResult<Vec<(OdsCode, NhsNumber, cpis_domain::Plan)>> {
        self.read(lifecycle::purgeable_plans)
    }

    fn purge(
        &self,
        plans: &[(OdsCode, NhsNumber, cpis_domain::Plan)],
        audit: &AuditEntry,
    ) -> StoreResult<(u64, u64)> {
        self.read(|c| lifecycle::purge(c, plans, audit))
    }

    /// PostgreSQL is backed up with its own tools (`pg_dump`, base backups): docs/DEPLOYMENT.md.
    fn backup_to(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Config(
            "cpis backup copies the embedded SQLite database; back up PostgreSQL with pg_dump or base backups".into(),
        ))
    }

    fn unacknowledged_notifications(&self) -> StoreResult<u64> {
        self.read(lifecycle::unacknowledged)
    }

    fn outbox_stats(&self) -> StoreResult<Vec<crate::OutboxStats>> {
        self.read(lifecycle::outbox_stats)
    }

    fn add_webhook(&self, webhook: &crate::Webhook, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| {
            webhooks::add(c, webhook)?;
            audit::append_alone(c, entry)
        })
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
        self.write(|c| {
            let removed = webhooks::remove(c, la, id, now)?;
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
    ) -> StoreResult<Vec<crate::DueDelivery>> {
        self.read(|c| webhooks::claim(c, now, lease_until, limit))
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
        Ok(Box::new(lookups::PgLookupTx::begin(self.pool.get()?)?))
    }

    fn recent_accesses(&self, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
        self.read_replica(|c| lookups::recent_accesses(c, nhs, limit))
    }

    fn notifications(
        &self,
        la: &OdsCode,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        self.read_replica(|c| lookups::notifications(c, la, after, limit))
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

    fn create_user(&self, user: &User) -> StoreResult<()> {
        self.read(|c| security::create_user(c, user))
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
        self.read(|c| security::update_user(c, user, now))
    }

    fn record_login_failure(
        &self,
        user_id: &str,
        max_failures: u32,
        lock_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(|c| security::record_login_failure(c, user_id, max_failures, lock_until, now))
    }

    fn clear_login_failures(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        self.read(|c| security::clear_login_failures(c, user_id, now))
    }

    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        self.read(|c| security::create_api_token(c, token))
    }

    fn change_identity(
        &self,
        change: &IdentityChange,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        // On the primary, in one transaction.
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
        self.read(|c| security::create_session(c, session))
    }

    fn session(&self, id_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<(Session, User)>> {
        self.read(|c| security::session(c, id_hash, now))
    }

    fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        self.read(|c| security::delete_session(c, id_hash))
    }

    fn oauth_client(&self, client_id: &str) -> StoreResult<Option<(OAuthClient, User)>> {
        // The primary: a client just registered must authenticate at once.
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
        self.read_replica(|c| audit::search(c, query))
    }

    fn audit_verify(&self) -> StoreResult<AuditVerification> {
        // One snapshot for the whole walk, so appends running meanwhile cannot make the log and
        // its head disagree.
        self.transaction(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            audit::verify,
        )
    }

    fn begin_upload(&self) -> StoreResult<Box<dyn UploadTx + '_>> {
        Ok(Box::new(uploads::PgUploadTx::begin(self.pool.get()?)?))
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
    ) -> StoreResult<Vec<crate::UploadOutcomeCounts>> {
        self.read_replica(|c| stats::la_upload_stats(c, la, since))
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
