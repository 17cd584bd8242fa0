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
mod convert;
mod directory;
mod lookups;
mod migrations;
mod pool;
mod records;
mod security;
mod testing;
mod uploads;

pub use testing::TempDatabase;

use crate::{AuditQuery, AuditVerification, NewApiToken, Session, User};
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
            Some("08" | "40" | "53" | "57" | "58") => StoreError::Unavailable(text),
            // Lock not available (lock_timeout, NOWAIT).
            Some("55") if code == "55P03" => StoreError::Unavailable(text),
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
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names and brings its schema up to date (once,
    /// under an advisory lock, however many servers start together).
    pub fn open(url: &str) -> StoreResult<Self> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("cpis");
        }
        let pool = Pool::new(config, POOL_MAX, POOL_WAIT);
        let mut conn = pool.connect()?;
        migrations::run(&mut conn)?;
        Ok(PgStore { pool })
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
        self.read(|c| {
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
        self.read(|c| directory::local_authority(c, ods))
    }

    fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        self.read(directory::local_authorities)
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

    fn begin_lookups(&self) -> StoreResult<Box<dyn LookupTx + '_>> {
        Ok(Box::new(lookups::PgLookupTx::begin(self.pool.get()?)?))
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

    fn create_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        self.read(|c| security::create_api_token(c, token))
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

    fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.write(|c| audit::append_alone(c, entry))
    }

    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.read(|c| audit::search(c, query))
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
        self.read(|c| uploads::summary(c, la, id))
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
}
