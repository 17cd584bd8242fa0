//! Shared helpers for the cpis-core integration tests: a real store (SQLite in a temporary
//! directory, or PostgreSQL: see [`test_store`]), a small hand-built directory and demographics
//! index, and builders for upload rows.
#![allow(dead_code)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use cpis_core::loaders;
use cpis_core::upload::{SpooledFile, Submitted, UploadEngine, UploadSettings};
use cpis_domain::report::{RowResult, UploadMeta, UploadSummary};
use cpis_domain::upload::{UploadMode, FORMAT_V1, HEADER};
use cpis_domain::{
    Clock, DemographicStatus, Demographics, FixedClock, NhsNumber, OdsCode, Plan, PlanType,
};
use cpis_store::sqlite::SqliteStore;
use cpis_store::{RowFilter, Store, StoreCounts, StoredRecord};
use std::sync::Arc;

/// Coventry.
pub const LA_A: &str = "E08000026";
/// Westminster.
pub const LA_B: &str = "E09000033";

/// The file date every upload in these tests carries unless told otherwise.
pub const FILE_DATE: &str = "2026-11-01";

pub fn d(s: &str) -> NaiveDate {
    cpis_domain::parse_iso_date(s).expect("test date")
}

pub fn la(s: &str) -> OdsCode {
    OdsCode::parse(s).expect("test ODS code")
}

/// The `i`-th valid NHS number of the `999` test range (prefixes that admit no check digit are
/// skipped), so tests can name distinct children by index.
pub fn nhs(i: u32) -> NhsNumber {
    let mut seen = 0;
    let mut prefix = 999_000_000;
    loop {
        if let Some(n) = NhsNumber::from_prefix(prefix) {
            if seen == i {
                return n;
            }
            seen += 1;
        }
        prefix += 1;
    }
}

pub fn active(n: NhsNumber, dob: &str) -> Demographics {
    Demographics {
        nhs_number: n,
        status: DemographicStatus::Active,
        date_of_birth: d(dob),
        sensitive: false,
        mother_nhs_number: None,
    }
}

pub fn s_flagged(n: NhsNumber, dob: &str) -> Demographics {
    Demographics {
        sensitive: true,
        ..active(n, dob)
    }
}

pub fn superseded(n: NhsNumber, by: NhsNumber, dob: &str) -> Demographics {
    Demographics {
        status: DemographicStatus::Superseded(by),
        ..active(n, dob)
    }
}

pub fn inactive(n: NhsNumber, dob: &str) -> Demographics {
    Demographics {
        status: DemographicStatus::Inactive,
        ..active(n, dob)
    }
}

/// One data row of a `cpis-upload/1` file, built field by field.
#[derive(Debug, Clone)]
pub struct Line([String; 11]);

impl Line {
    /// An `upsert` row with no end date, no EDD and `sensitive=false`.
    pub fn upsert(n: NhsNumber, dob: &str, plan: &str, start: &str) -> Line {
        Line([
            "upsert".into(),
            n.digits(),
            format!("LID-{}", n.digits()),
            "Given".into(),
            "Family".into(),
            dob.into(),
            plan.into(),
            start.into(),
            String::new(),
            String::new(),
            "false".into(),
        ])
    }

    /// A `delete` row, for the whole record or (with a plan type) one plan.
    pub fn delete(n: NhsNumber, plan: Option<&str>) -> Line {
        let mut f: [String; 11] = Default::default();
        f[0] = "delete".into();
        f[1] = n.digits();
        f[6] = plan.unwrap_or("").into();
        Line(f)
    }

    pub fn nhs_text(mut self, text: &str) -> Line {
        self.0[1] = text.into();
        self
    }
    pub fn given_name(mut self, name: &str) -> Line {
        self.0[3] = name.into();
        self
    }
    pub fn local_id(mut self, id: &str) -> Line {
        self.0[2] = id.into();
        self
    }
    pub fn end(mut self, end: &str) -> Line {
        self.0[8] = end.into();
        self
    }
    pub fn edd(mut self, edd: &str) -> Line {
        self.0[9] = edd.into();
        self
    }
    pub fn sensitive(mut self, s: bool) -> Line {
        self.0[10] = s.to_string();
        self
    }
    /// The `sensitive` column left empty.
    pub fn sensitive_unstated(mut self) -> Line {
        self.0[10] = String::new();
        self
    }
    pub fn text(&self) -> String {
        self.0.join(",")
    }
}

/// A whole file: the header row, then the given rows, LF line endings.
pub fn file(lines: &[Line]) -> Vec<u8> {
    let mut out = HEADER.join(",");
    out.push('\n');
    for l in lines {
        out.push_str(&l.text());
        out.push('\n');
    }
    out.into_bytes()
}

pub fn header_line() -> String {
    HEADER.join(",")
}

/// What keeps a test store's database alive; dropped after the store.
pub enum StoreGuard {
    Sqlite(tempfile::TempDir),
    Postgres(cpis_store::postgres::TempDatabase),
}

impl StoreGuard {
    /// The database URL (a SQLite path or a `postgres://` URL).
    pub fn url(&self) -> String {
        match self {
            StoreGuard::Sqlite(dir) => dir.path().join("t.db").to_string_lossy().into_owned(),
            StoreGuard::Postgres(db) => db.url().to_owned(),
        }
    }
}

pub use cpis_testkit::end_of_test_problems;

/// A fresh, empty store for one test. SQLite in a temporary directory by default; PostgreSQL (a
/// new database per test, dropped afterwards) when `CPIS_TEST_BACKEND=postgres` and
/// `CPIS_TEST_PG_URL` names a server, e.g.
/// `CPIS_TEST_BACKEND=postgres CPIS_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p cpis-core`.
pub fn test_store() -> (Arc<dyn Store>, StoreGuard) {
    if std::env::var("CPIS_TEST_BACKEND").as_deref() == Ok("postgres") {
        match std::env::var("CPIS_TEST_PG_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let db = cpis_store::postgres::TempDatabase::create(&url)
                    .expect("create a test database through CPIS_TEST_PG_URL");
                let store: Arc<dyn Store> =
                    Arc::from(cpis_store::open(db.url()).expect("open PostgreSQL store"));
                return (store, StoreGuard::Postgres(db));
            }
            _ if std::env::var("CPIS_REQUIRE_PG").as_deref() == Ok("1") => {
                panic!("CPIS_TEST_BACKEND=postgres and CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set")
            }
            _ => {
                println!("CPIS_TEST_BACKEND=postgres but CPIS_TEST_PG_URL is not set: using SQLite")
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("t.db")).expect("open store"));
    (store, StoreGuard::Sqlite(dir))
}

/// An engine over a fresh store (see [`test_store`]), with a fixed clock that moves on a minute
/// before each submission (so a record rewritten by a later upload shows a new `updated_at`).
///
/// When it is dropped (and the test has not already failed) it checks the store with
/// [`end_of_test_problems`] and panics naming what is wrong. A test that stops a worker holding
/// a claim on purpose settles it or lets the clock pass the lease before it ends.
pub struct Env {
    pub store: Arc<dyn Store>,
    pub engine: UploadEngine,
    pub clock: Arc<FixedClock>,
    _guard: StoreGuard,
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let problems =
            end_of_test_problems(self.store.as_ref(), &self._guard.url(), self.clock.now());
        if !problems.is_empty() {
            panic!(
                "the test left the database in a bad state ({} backend):\n  {}",
                self.store.backend(),
                problems.join("\n  ")
            );
        }
    }
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0)
        .single()
        .expect("time")
}

impl Env {
    /// The database URL behind [`Env::store`] (a SQLite path or a `postgres://` URL), for tests
    /// that reach the database behind the store's back.
    pub fn db_url(&self) -> String {
        self._guard.url()
    }

    /// An empty store (no directory, no demographics).
    pub fn empty() -> Env {
        Env::empty_with(UploadSettings::default())
    }

    pub fn empty_with(settings: UploadSettings) -> Env {
        let (store, guard) = test_store();
        let clock = Arc::new(FixedClock::new(start_time()));
        let engine = UploadEngine::new(store.clone(), clock.clone(), settings);
        Env {
            store,
            engine,
            clock,
            _guard: guard,
        }
    }

    /// A store holding LA_A and LA_B in the directory (loaded through the directory loader) and
    /// the given people in the demographics index.
    pub fn with(people: &[Demographics]) -> Env {
        Env::with_settings(people, UploadSettings::default())
    }

    pub fn with_settings(people: &[Demographics], settings: UploadSettings) -> Env {
        let env = Env::empty_with(settings);
        let las = format!(
            "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox\n\
             {LA_A},Coventry,01632 960001,01632 960002,cov@example.org,LA001OT\n\
             {LA_B},Westminster,020 7946 0001,020 7946 0002,,LA002OT\n"
        );
        let las = loaders::parse_local_authorities(las.as_bytes()).expect("LA directory");
        env.store
            .upsert_local_authorities(&las, start_time())
            .expect("store LAs");
        env.add_people(people);
        env
    }

    pub fn add_people(&self, people: &[Demographics]) {
        if !people.is_empty() {
            self.store
                .upsert_demographics(people, start_time())
                .expect("store demographics");
        }
    }

    pub fn meta(&self, la_code: &str, file_id: &str, mode: UploadMode) -> UploadMeta {
        UploadMeta {
            la: la(la_code),
            file_id: file_id.to_owned(),
            mode,
            file_date: d(FILE_DATE),
            format: FORMAT_V1.to_owned(),
            channel: "api".to_owned(),
        }
    }

    pub fn submit_meta(&self, meta: UploadMeta, body: &[u8]) -> Submitted {
        self.clock.set(self.clock.now() + Duration::minutes(1));
        let spooled = SpooledFile::from_bytes(body).expect("spool");
        let cap = cap(meta.la.as_str());
        self.engine
            .submit(&cap, meta, &spooled, &|_| {})
            .expect("submit returns Ok")
    }

    pub fn submit(&self, la_code: &str, file_id: &str, mode: UploadMode, body: &[u8]) -> Submitted {
        self.submit_meta(self.meta(la_code, file_id, mode), body)
    }

    /// Submits a delta file that must be processed as a new upload; returns its summary.
    pub fn delta(&self, la_code: &str, file_id: &str, lines: &[Line]) -> UploadSummary {
        match self.submit(la_code, file_id, UploadMode::Delta, &file(lines)) {
            Submitted::New(s) => s,
            Submitted::Replay(s) => panic!("expected a new upload, got a replay of {}", s.id),
        }
    }

    /// Submits a full file that must be processed as a new upload; returns its summary.
    pub fn full(&self, la_code: &str, file_id: &str, lines: &[Line]) -> UploadSummary {
        match self.submit(la_code, file_id, UploadMode::Full, &file(lines)) {
            Submitted::New(s) => s,
            Submitted::Replay(s) => panic!("expected a new upload, got a replay of {}", s.id),
        }
    }

    pub fn rows(&self, summary: &UploadSummary) -> Vec<RowResult> {
        self.store
            .upload_rows(&summary.meta.la, &summary.id, &RowFilter::default())
            .expect("upload rows")
    }

    /// The one row result with this row number.
    pub fn row(&self, summary: &UploadSummary, row: u64) -> RowResult {
        let rows = self.rows(summary);
        rows.into_iter()
            .find(|r| r.row == row)
            .unwrap_or_else(|| panic!("no result for row {row}"))
    }

    /// The record `la_code` holds for this NHS number, if any.
    pub fn record(&self, n: NhsNumber, la_code: &str) -> Option<StoredRecord> {
        let want = la(la_code);
        self.store
            .records_for(n)
            .expect("records_for")
            .into_iter()
            .find(|r| r.la == want)
    }

    pub fn all_records(&self, n: NhsNumber) -> Vec<StoredRecord> {
        self.store.records_for(n).expect("records_for")
    }

    pub fn counts(&self) -> StoreCounts {
        self.store.counts().expect("counts")
    }
}

/// The plan of this type in a record, if it has one.
pub fn plan(rec: &StoredRecord, t: PlanType) -> Option<Plan> {
    rec.plans.iter().find(|p| p.plan_type() == t).cloned()
}

/// Record and plan counts (the upload table grows with every receipt, so it is left out when
/// checking that an upload changed no record).
pub fn data_counts(c: &StoreCounts) -> (u64, u64) {
    (c.records, c.plans)
}

/// The upload capability for an LA (an operator acting for it).
pub fn cap(la_code: &str) -> cpis_auth::capability::LaUpload {
    cpis_core::upload::operator_capability(&la(la_code), "test")
}
