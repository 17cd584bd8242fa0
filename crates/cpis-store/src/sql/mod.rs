//! The one SQL layer both backends share. Every query is written once, in PostgreSQL's spelling
//! (`$1` placeholders), against [`Db`]: a connection that binds [`Arg`]s and hands rows back as
//! [`Row`]s of [`Value`]s, whichever driver is underneath. The SQLite connection rewrites the text
//! in one small dialect step ([`to_sqlite`]); the few statements that really differ branch on
//! [`Db::postgres`]. Timestamps are `timestamptz` on PostgreSQL and RFC 3339 text (microseconds,
//! `Z`) on SQLite, dates `date` or ISO text, booleans `boolean` or 0/1: binding and reading
//! convert, so query code sees only domain values.

pub(crate) mod audit;
mod births;
pub(crate) mod demographics;
pub(crate) mod directory;
pub(crate) mod history;
mod identities;
pub(crate) mod outbox;
pub(crate) mod records;
mod store;
mod tx;
pub(crate) mod uploads;

pub use store::Store;
pub use tx::SqlTx;

use crate::UserKind;
use crate::{StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use cpis_domain::outcome::{DetailCode, FileOutcome, RecordOutcome};
use cpis_domain::report::{UploadId, UploadStatus};
use cpis_domain::upload::UploadMode;
use cpis_domain::work_queue::AckOutcome;
use cpis_domain::{
    parse_iso_date, AccessKind, AuditOutcome, EmailAddress, NhsNumber, NotificationKind, OdsCode,
    OfficeHours, Permissions, PhoneNumber, PlanType, SettingType,
};
use std::ops::DerefMut;

/// A parameter as bound: each backend turns it into its own column type.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Bool(bool),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    /// A `text[]` (PostgreSQL only: `= ANY($1)`, `unnest`).
    TextList(&'a [String]),
    /// A `bigint[]` (PostgreSQL only).
    IntList(&'a [i64]),
}

/// What can be bound as a parameter.
pub trait ToArg {
    fn arg(&self) -> Arg<'_>;
}

macro_rules! to_arg {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(impl ToArg for $t {
        fn arg(&self) -> Arg<'_> {
            let $v = self;
            $e
        }
    })*};
}
to_arg! {
    i64 => |v| Arg::Int(*v);
    i32 => |v| Arg::Int((*v).into());
    i16 => |v| Arg::Int((*v).into());
    u32 => |v| Arg::Int((*v).into());
    u16 => |v| Arg::Int((*v).into());
    bool => |v| Arg::Bool(*v);
    str => |v| Arg::Text(v);
    String => |v| Arg::Text(v);
    [u8] => |v| Arg::Blob(v);
    Vec<u8> => |v| Arg::Blob(v);
    Vec<String> => |v| Arg::TextList(v);
    Vec<i64> => |v| Arg::IntList(v);
    DateTime<Utc> => |v| Arg::Time(*v);
    NaiveDate => |v| Arg::Date(*v);
}
impl<T: ToArg> ToArg for Option<T> {
    fn arg(&self) -> Arg<'_> {
        self.as_ref().map_or(Arg::Null, ToArg::arg)
    }
}
impl<T: ToArg + ?Sized> ToArg for &T {
    fn arg(&self) -> Arg<'_> {
        (**self).arg()
    }
}

/// The parameters of one statement.
pub type Args<'a> = &'a [&'a dyn ToArg];

/// A column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

/// A result row, the same from either driver.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

/// A Rust value one column converts into.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<StoreResult<Self>>;
}

macro_rules! from_value {
    ($($t:ty: $($p:pat => $e:expr),*;)*) => {$(impl FromValue for $t {
        fn from_value(v: &Value) -> Option<StoreResult<Self>> {
            match v {
                $($p => Some($e),)*
                _ => None,
            }
        }
    })*};
}
from_value! {
    i64: Value::Int(i) => Ok(*i);
    // Stored counts and sequence numbers are never negative.
    u64: Value::Int(i) => Ok((*i).max(0) as u64);
    u32: Value::Int(i) => Ok(u32::try_from((*i).max(0)).unwrap_or(u32::MAX));
    u16: Value::Int(i) => Ok(u16::try_from((*i).max(0)).unwrap_or(u16::MAX));
    bool: Value::Bool(b) => Ok(*b), Value::Int(i) => Ok(*i != 0);
    String: Value::Text(s) => Ok(s.clone());
    Vec<u8>: Value::Blob(b) => Ok(b.clone()), Value::Text(s) => Ok(s.clone().into_bytes());
    DateTime<Utc>: Value::Time(t) => Ok(*t), Value::Text(s) => DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::corrupt("timestamp"));
    NaiveDate: Value::Date(d) => Ok(*d),
        Value::Text(s) => parse_iso_date(s).map_err(|_| StoreError::corrupt("date"));
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<StoreResult<Self>> {
        match v {
            Value::Null => Some(Ok(None)),
            v => T::from_value(v).map(|r| r.map(Some)),
        }
    }
}

impl Row {
    fn value(&self, i: usize) -> StoreResult<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Backend(format!("no column {i} in the row")))
    }

    pub fn get<T: FromValue>(&self, i: usize) -> StoreResult<T> {
        let v = self.value(i)?;
        T::from_value(v).unwrap_or_else(|| {
            Err(StoreError::Backend(format!(
                "column {i} holds {v:?}, not a {}",
                std::any::type_name::<T>()
            )))
        })
    }

    pub fn opt_str(&self, i: usize) -> StoreResult<Option<&str>> {
        match self.value(i)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            v => Err(StoreError::Backend(format!(
                "column {i} holds {v:?}, not text"
            ))),
        }
    }

    pub fn str(&self, i: usize) -> StoreResult<&str> {
        self.opt_str(i)?
            .ok_or_else(|| StoreError::Backend(format!("column {i} is NULL, not text")))
    }
}

/// Text columns holding a code or a domain value: `Type: |text| parsed, what` (`None`: the column
/// is corrupt).
macro_rules! from_text {
    ($($t:ty: |$s:ident| $parse:expr, $what:literal;)*) => {$(impl FromValue for $t {
        fn from_value(v: &Value) -> Option<StoreResult<Self>> {
            let Value::Text($s) = v else { return None };
            let $s: &str = $s;
            Some($parse.ok_or_else(|| StoreError::corrupt($what)))
        }
    })*};
}
from_text! {
    OdsCode: |s| OdsCode::parse(s).ok(), "ODS code";
    NhsNumber: |s| NhsNumber::parse(s).ok(), "NHS number";
    UploadId: |s| UploadId::parse(s).ok(), "upload id";
    Permissions: |s| Permissions::parse(s).ok(), "permissions";
    PlanType: |s| s.parse().ok(), "plan type";
    SettingType: |s| s.parse().ok(), "setting type";
    OfficeHours: |s| OfficeHours::parse(s).ok(), "office hours";
    PhoneNumber: |s| PhoneNumber::parse(s).ok(), "phone number";
    EmailAddress: |s| EmailAddress::parse(s).ok(), "email address";
    UploadMode: |s| s.parse().ok(), "upload mode";
    UserKind: |s| [UserKind::User, UserKind::System].into_iter().find(|k| k.code() == s),
        "user kind";
    AccessKind: |s| AccessKind::from_code(s), "access kind";
    NotificationKind: |s| NotificationKind::from_code(s), "notification kind";
    AckOutcome: |s| AckOutcome::from_code(s), "acknowledgement outcome";
    UploadStatus: |s| UploadStatus::from_code(s), "upload status";
    FileOutcome: |s| FileOutcome::from_code(s), "file outcome";
    RecordOutcome: |s| RecordOutcome::from_code(s), "record outcome";
    DetailCode: |s| DetailCode::from_code(s), "detail code";
    AuditOutcome: |s| AuditOutcome::from_code(s), "audit outcome";
}

/// A struct read from consecutive columns, from column `at` on, in the order its fields are
/// named: `from_row!(r, 0 => Webhook { id, la, url, secret, created_at })`. Each field reads
/// with [`Row::get`], except one given as `field = value`, which takes no column.
macro_rules! from_row {
    ($r:expr, $at:expr => $ty:ident { $($field:ident $(= $value:expr)?),* $(,)? }) => {{
        let mut columns = $at..;
        $ty { $($field: $crate::sql::from_row!(@ $r, columns $(, $value)?)),* }
    }};
    (@ $r:expr, $columns:ident) => { $r.get($columns.next().unwrap_or_default())? };
    (@ $r:expr, $columns:ident, $value:expr) => { $value };
}
pub(crate) use from_row;

/// A transaction-scoped lock. PostgreSQL takes an advisory lock; SQLite's one writer already
/// excludes every other.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// Held before a transaction draws notification numbers (they become visible in order).
    Notify,
    /// One upload per LA at a time.
    UploadLa(&'a str),
}

/// A connection, as the shared queries see it.
pub trait Db {
    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: Args<'_>) -> StoreResult<u64>;
    fn rows(&mut self, sql: &str, args: Args<'_>) -> StoreResult<Vec<Row>>;
    /// Statements without parameters.
    fn batch(&mut self, sql: &str) -> StoreResult<()>;
    /// Opens a write transaction (`BEGIN IMMEDIATE` on SQLite).
    fn begin(&mut self) -> StoreResult<()>;
    fn commit(&mut self) -> StoreResult<()>;
    /// Rolls back whatever is open; a connection that cannot is not reused.
    fn rollback(&mut self);
    fn lock(&mut self, lock: Lock<'_>) -> StoreResult<()>;
    /// The PostgreSQL connection, for what only it does (COPY, arrays, buffered writes).
    fn postgres(&mut self) -> Option<&mut crate::postgres::PgConn> {
        None
    }

    fn row(&mut self, sql: &str, args: Args<'_>) -> StoreResult<Option<Row>> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    fn one(&mut self, sql: &str, args: Args<'_>) -> StoreResult<Row> {
        self.row(sql, args)?
            .ok_or_else(|| StoreError::Backend("the query returned no row".into()))
    }

    /// The first column of the one row (a count).
    fn count(&mut self, sql: &str, args: Args<'_>) -> StoreResult<u64> {
        self.one(sql, args)?.get(0)
    }
}

impl dyn Db + '_ {
    /// Every row, each read with `read`.
    pub fn list<T>(
        &mut self,
        sql: &str,
        args: Args<'_>,
        read: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.rows(sql, args)?.iter().map(read).collect()
    }

    /// The first row, if there is one, read with `read`.
    pub fn find<T>(
        &mut self,
        sql: &str,
        args: Args<'_>,
        read: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.row(sql, args)?.as_ref().map(read).transpose()
    }
}

/// A connection held for a transaction (the SQLite writer's guard, a pooled PostgreSQL one).
pub trait DbHandle {
    fn db(&mut self) -> &mut dyn Db;
}

impl<T: DerefMut> DbHandle for T
where
    T::Target: Db + Sized,
{
    fn db(&mut self) -> &mut dyn Db {
        &mut **self
    }
}

/// Runs a store call where a blocking database client may block. Callers hand store calls to a
/// blocking thread (`spawn_blocking`); a call made on a thread that drives an async runtime
/// instead runs on a scoped thread of its own, because the PostgreSQL client blocks on a runtime
/// of its own, which may not start inside another (it would panic the task).
pub(crate) fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// What a backend decides: where reads and writes run. Everything else is shared
/// (`impl Store for` every backend is in `store.rs`).
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Runs `f` outside an explicit transaction.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T>;
    /// A read the replica may answer (a moment old).
    fn read_replica<T>(&self, f: impl Fn(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.read_replica_or_primary(f, |_| false)
    }
    /// As `read_replica`, asking the primary too when the replica's answer is `missing`.
    fn read_replica_or_primary<T>(
        &self,
        f: impl Fn(&mut dyn Db) -> StoreResult<T>,
        _missing: impl Fn(&T) -> bool,
    ) -> StoreResult<T> {
        self.read(f)
    }
    /// Runs `f` in one read-only snapshot.
    fn snapshot<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T>;
    /// A connection inside a new write transaction.
    fn begin(&self) -> StoreResult<Box<dyn DbHandle + '_>>;
    /// The transaction a group of lookups is written in: a write transaction, unless the
    /// backend says otherwise (SQLite spools lookups while a long transaction holds its writer).
    fn begin_lookups(&self) -> StoreResult<Box<dyn crate::LookupTx + '_>> {
        Ok(Box::new(SqlTx::new(self.begin()?)))
    }
    /// Whether lookups read their view on readers, side by side and while the lookups thread
    /// commits (`Store::lookup_view`), rather than in their group's write transaction
    /// (`LookupTx::view`). No by default: on SQLite a commit empties every reader's page cache,
    /// so the one writer, whose cache stays warm, reads a view for less than a reader does.
    fn views_on_readers(&self) -> bool {
        false
    }
    /// Copies spooled lookups into the database, a bounded batch at a time: how many were
    /// copied (0 when none wait, always on a backend that does not spool).
    fn drain_lookup_spool(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Copies in the lookups made durable outside the tables (SQLite's lookup log) before a
    /// call that reads or changes what lookups write (accesses, notifications, their
    /// deliveries, the audit log), so that a caller sees what it was answered: `wait`ing for the
    /// writer before a write, only when the writer is free within moments before a read (a read
    /// does not wait for an upload). Nothing to do on a backend that writes lookups in place.
    fn copy_in_logged_lookups(&self, _wait: bool) -> StoreResult<()> {
        Ok(())
    }
    /// [`Backend::read`] of what lookups write ([`Backend::copy_in_logged_lookups`] first).
    fn read_logged<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.copy_in_logged_lookups(false)?;
        self.read(f)
    }
    /// [`Backend::read_replica`] of what lookups write.
    fn read_replica_logged<T>(&self, f: impl Fn(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.copy_in_logged_lookups(false)?;
        self.read_replica(f)
    }
    /// [`Backend::snapshot`] of what lookups write.
    fn snapshot_logged<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.copy_in_logged_lookups(false)?;
        self.snapshot(f)
    }
    /// [`Backend::write`] of what lookups write (waiting for them to be copied in).
    fn write_logged<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.copy_in_logged_lookups(true)?;
        self.write(f)
    }
    fn backup_file(&self, path: &std::path::Path) -> StoreResult<()>;

    /// Runs `f` in a write transaction: committed when it returns `Ok`, rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        let mut handle = self.begin()?;
        let db = handle.db();
        match f(db) {
            Ok(v) => {
                db.commit()?;
                Ok(v)
            }
            Err(e) => {
                db.rollback();
                Err(e)
            }
        }
    }
}

/// The schema migrations in order, each embedded from `migrations/<backend>/<name>.sql`: one
/// list, so a migration exists for both backends or neither.
macro_rules! migrations {
    ($backend:literal) => {
        $crate::sql::migrations!(@ $backend: "0001_init", "0002_lookups", "0003_security",
            "0004_notification_la_seq", "0005_webhooks", "0006_mesh", "0007_stale_held_uploads",
            "0008_plan_sensitive_marks", "0009_access_nhs_identity", "0010_nhs_identities",
            "0011_upload_row_local_id", "0012_lookup_write_indexes", "0013_workflow_kinds",
            "0014_work_queue", "0015_contacts", "0017_births", "0018_office_hours",
            "0019_lookup_spool", "0020_plans_fillfactor", "0021_access_id_unindexed",
            "0022_upload_rows_unchecked", "0023_access_history_by_child")
    };
    (@ $backend:literal: $($name:literal),*) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $backend,
            "/", $name, ".sql")))),*]
    };
}
pub(crate) use migrations;

/// Refuses a database a newer cpis migrated.
pub fn check_schema(have: usize, known: usize) -> StoreResult<()> {
    if have > known {
        return Err(StoreError::Config(format!(
            "database schema version {have} is newer than this cpis ({known}); upgrade cpis"
        )));
    }
    Ok(())
}

/// The SQLite text of a timestamp, also the one the audit chain hashes: RFC 3339, microseconds,
/// `Z` (sorts as it compares).
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Texts bound as one SQLite parameter: a JSON array, which a statement reads as
/// `IN (SELECT value FROM json_each($n))` (SQLite binds no arrays; PostgreSQL takes `= ANY($n)`).
pub fn json_list(items: &[String]) -> StoreResult<String> {
    serde_json::to_string(items).map_err(|e| StoreError::Backend(e.to_string()))
}

/// A caller's count or cursor as a `bigint` (saturating).
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The dialect step: PostgreSQL's spelling into SQLite's. `$N` becomes `?N`; casts (`::text`),
/// `COLLATE "C"` (SQLite compares bytes already) and row locks (`FOR UPDATE …`, SQLite has one
/// writer) go; `IS NOT DISTINCT FROM` is `IS`, `GREATEST` the scalar `max`, `strpos` `instr`.
pub fn to_sqlite(sql: &str) -> String {
    const SWAPS: &[(&str, &str)] = &[
        (" COLLATE \"C\"", ""),
        ("IS NOT DISTINCT FROM", "IS"),
        ("GREATEST(", "max("),
        ("greatest(", "max("),
        ("strpos(", "instr("),
    ];
    let sql = sql.find("FOR UPDATE").map_or(sql, |i| &sql[..i]);
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in SWAPS {
            if let Some(after) = rest.strip_prefix(from) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        match c {
            '$' if rest[1..].starts_with(|d: char| d.is_ascii_digit()) => {
                out.push('?');
                rest = &rest[1..];
            }
            ':' if rest.starts_with("::") => {
                let tail = &rest[2..];
                let end = tail
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(tail.len());
                rest = &tail[end..];
            }
            '\'' => {
                let end = rest[1..].find('\'').map_or(rest.len(), |i| i + 2);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
            }
            c => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_sqlite;

    #[test]
    fn rewrites_postgres_spelling_for_sqlite() {
        assert_eq!(
            to_sqlite("SELECT a FROM t WHERE ($1::text IS NULL OR b = $1::text) AND c IS NOT DISTINCT FROM $12 ORDER BY a COLLATE \"C\" FOR UPDATE SKIP LOCKED"),
            "SELECT a FROM t WHERE (?1 IS NULL OR b = ?1) AND c IS ?12 ORDER BY a "
        );
        assert_eq!(
            to_sqlite("SET x = GREATEST(x, excluded.x), y = greatest($4::date, s), z = strpos(n, $2) WHERE k = '$1::x'"),
            "SET x = max(x, excluded.x), y = max(?4, s), z = instr(n, ?2) WHERE k = '$1::x'"
        );
    }
}
