//! The storage contract: the same test functions run against every backend, so SQLite and
//! PostgreSQL behave alike.
//!
//! SQLite runs on a temporary file. PostgreSQL runs when `CPIS_TEST_PG_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) on which that user may create databases: each
//! test gets a fresh database `cpis_test_…`, dropped when it ends (also on panic). Without the
//! variable the PostgreSQL variants print "skipped" and pass, unless `CPIS_REQUIRE_PG=1`.
//!
//! ```text
//! CPIS_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p cpis-store --test store_contract
//! ```

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, TimeZone, Utc};
use cpis_domain::notification::{Ack, Acknowledgement, Assignment};
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{RecordRow, SensitiveMark, UploadMode};
use cpis_domain::work_queue::{AckDetails, AckOutcome, Assignee};
use cpis_domain::{
    Access, AccessKind, Accessor, AuditActor, AuditEntry, AuditOutcome, CareSetting,
    DemographicStatus, Demographics, DetailCode, FileOutcome, LocalAuthority, NewNotification,
    NhsIdentity, NhsNumber, NotificationKind, OdsCode, OfficeHours, Permission, Permissions,
    PhoneNumber, Plan, PlanType, RecordOutcome, SettingType, WorkContact,
};
use cpis_store::audit_chain::GENESIS;
use cpis_store::postgres::TempDatabase;
use cpis_store::{
    AuditQuery, AuditVerification, HeldClaim, IdentityChange, NewApiToken, NewUpload,
    NotificationFilter, NotificationOrder, NotificationQuery, RowFilter, Session, Store,
    StoreError, User, UserKind,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

// ---------------------------------------------------------------------------------------------
// Backends.

enum Backend {
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        db: TempDatabase,
    },
}

/// One test's store and what is needed to reach its database behind the store's back. The store
/// is dropped before the database it lives in.
struct Ctx {
    store: Box<dyn Store>,
    backend: Backend,
}

impl Ctx {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn url(&self) -> String {
        match &self.backend {
            Backend::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            Backend::Postgres { db } => db.url().to_owned(),
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Another store on the same database (another server).
    fn reopen(&self) -> Box<dyn Store> {
        cpis_store::open(&self.url()).expect("reopen store")
    }

    fn schema_version(&self) -> u32 {
        match &self.backend {
            Backend::Sqlite { path, .. } => cpis_store::sqlite::SqliteStore::open(path)
                .unwrap()
                .schema_version()
                .unwrap(),
            Backend::Postgres { db } => cpis_store::postgres::PgStore::open(db.url())
                .unwrap()
                .schema_version()
                .unwrap(),
        }
    }

    /// Runs raw SQL on a connection of its own (the statement for this backend).
    fn raw(&self, sqlite: &str, postgres: &str) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sqlite))
                .map_err(|e| e.to_string()),
            Backend::Postgres { db } => ::postgres::Client::connect(db.url(), ::postgres::NoTls)
                .and_then(|mut c| c.batch_execute(postgres))
                .map_err(|e| e.to_string()),
        }
    }

    /// The names of a table's indexes, sorted (SQLite lists no index for an integer primary key;
    /// PostgreSQL names its primary key's `<table>_pkey`).
    fn index_names(&self, table: &str) -> Vec<String> {
        let mut names: Vec<String> = match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn
                    .prepare("SELECT name FROM pragma_index_list(?1)")
                    .unwrap();
                let names = stmt.query_map([table], |r| r.get(0)).unwrap();
                names.map(Result::unwrap).collect()
            }
            Backend::Postgres { db } => {
                let mut c = ::postgres::Client::connect(db.url(), ::postgres::NoTls).unwrap();
                let rows = c
                    .query(
                        "SELECT indexname::text FROM pg_indexes WHERE tablename = $1",
                        &[&table],
                    )
                    .unwrap();
                rows.iter().map(|r| r.get(0)).collect()
            }
        };
        names.sort();
        names
    }

    /// A URL naming a new, empty database of the same backend, and what keeps it alive.
    fn fresh(&self) -> (String, Box<dyn std::any::Any>) {
        match &self.backend {
            Backend::Sqlite { dir, .. } => {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let path = dir.path().join(format!("fresh{n}.db"));
                (format!("sqlite://{}", path.display()), Box::new(()))
            }
            Backend::Postgres { .. } => {
                let admin = pg_url().expect("PostgreSQL URL");
                let fresh = TempDatabase::create(&admin).expect("create database");
                (fresh.url().to_owned(), Box::new(fresh))
            }
        }
    }
}

fn sqlite_ctx() -> Ctx {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = cpis_store::open(&format!("sqlite://{}", path.display())).expect("open sqlite");
    assert_eq!(store.backend(), "sqlite");
    Ctx {
        store,
        backend: Backend::Sqlite { dir, path },
    }
}

/// The PostgreSQL server to test against, if any.
fn pg_url() -> Option<String> {
    std::env::var("CPIS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// `replica`: the store also sends its read-only queries to a "replica" that is the same
/// database (so reads see every write), exercising the replica routing under the whole contract.
fn pg_ctx(replica: bool) -> Option<Ctx> {
    let Some(admin) = pg_url() else {
        if std::env::var("CPIS_REQUIRE_PG").is_ok_and(|v| v == "1") {
            panic!("CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set");
        }
        println!("skipped: set CPIS_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the PostgreSQL variant");
        return None;
    };
    let db = TempDatabase::create(&admin)
        .unwrap_or_else(|e| panic!("creating a test database through CPIS_TEST_PG_URL: {e}"));
    let store = if replica {
        cpis_store::open_with_replica(db.url(), Some(db.url())).expect("open postgres + replica")
    } else {
        cpis_store::open(db.url()).expect("open postgres")
    };
    assert_eq!(store.backend(), "postgres");
    Some(Ctx {
        store,
        backend: Backend::Postgres { db },
    })
}

/// Each contract test three times: `sqlite::name`, `postgres::name` and
/// `postgres_replica::name` (PostgreSQL with read-only queries routed to a replica connection
/// pool on the same database: see also `tests/pg_replica.rs`).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::sqlite_ctx());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(ctx) = super::pg_ctx(false) {
                        super::$name(&ctx);
                    }
                }
            )*
        }
        mod postgres_replica {
            $(
                #[test]
                fn $name() {
                    if let Some(ctx) = super::pg_ctx(true) {
                        super::$name(&ctx);
                    }
                }
            )*
        }
    };
}

contract!(
    access_history_pages_oldest_first,
    acknowledgement_keeps_who_outcome_and_note_of_the_first,
    assignment_is_la_scoped_and_audited,
    work_queue_filters_order_and_pages,
    escalation_is_written_once_under_concurrency,
    an_item_of_repeat_lookups_raises_one_escalation,
    migrations_are_idempotent,
    an_access_is_indexed_by_sequence_and_child_only,
    a_postgres_test_database_is_in_the_c_locale,
    row_results_are_not_checked_row_by_row_on_postgres,
    concurrent_opens_migrate_once,
    directory_round_trips,
    demographics_round_trip,
    upload_commits_or_rolls_back_whole,
    sensitive_marks_are_kept_per_plan_and_removed_only_explicitly,
    bulk_upload_keeps_file_order,
    a_plan_named_thrice_in_a_large_batch_takes_its_rows_in_order,
    a_row_that_changes_nothing_writes_nothing,
    a_child_named_twice_in_one_upload_takes_its_rows_in_order,
    idempotency_lookup,
    refused_upload_is_recorded_but_not_effective,
    row_results_page_and_filter,
    held_file_round_trip,
    held_upload_goes_stale_after_a_later_upload,
    open_plans_and_end_plan,
    delete_semantics,
    lookup_tx_writes_accesses_and_notifications,
    a_lookup_group_writes_everything_in_order,
    notifications_by_cursor_never_skip_under_concurrency,
    acknowledge_is_idempotent_and_la_scoped,
    acknowledgement_and_its_audit_entry_commit_together,
    users_tokens_and_sessions,
    login_failures_count_atomically_under_concurrency,
    identity_changes_commit_with_their_audit_entry,
    audit_append_search_and_verify,
    audit_verify_detects_an_edited_row,
    concurrent_uploads_of_one_file_apply_once,
    mesh_outbox_queues_once_and_records_each_send,
    la_upload_stats_and_care_settings_list,
    la_records_page_and_search,
    notifications_newest_first,
    recent_uploads_newest_first_and_la_scoped,
    webhook_changes_commit_with_their_audit_entry,
    accesses_keep_the_nhs_identity,
    oauth_clients_and_assertion_jtis,
    every_notification_kind_is_stored_and_read_back,
    births_reminders_and_adoption_invalidation,
    attendance_counts_unscheduled_accesses_in_their_windows,
    a_lookup_view_and_the_accesses_after_it_count_each_access_once,
    lookup_views_read_together_are_the_views_read_one_by_one,
    accesses_read_ahead_for_a_group_are_those_read_one_by_one,
    lookups_do_not_wait_for_an_upload_and_land_exactly_once,
    a_lookup_made_during_an_upload_is_read_and_acknowledged_at_once_after_it,
);

// ---------------------------------------------------------------------------------------------
// Fixtures.

const LA_A: &str = "E08000026";
const LA_B: &str = "E09000033";

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn d(s: &str) -> NaiveDate {
    cpis_domain::parse_iso_date(s).expect("test date")
}

fn la(s: &str) -> OdsCode {
    OdsCode::parse(s).expect("test ODS code")
}

/// A time with microseconds, which both backends keep exactly.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().unwrap() + Duration::microseconds(123_456)
}

/// `n` distinct valid NHS numbers of the 999 test range, from the `skip`-th on.
fn nhs_numbers(skip: usize, n: usize) -> Vec<NhsNumber> {
    (999_000_000u32..)
        .filter_map(NhsNumber::from_prefix)
        .skip(skip)
        .take(n)
        .collect()
}

fn nhs(i: usize) -> NhsNumber {
    nhs_numbers(i, 1)[0]
}

fn upload_id() -> UploadId {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    UploadId::parse(&format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}

fn seed_directory(s: &dyn Store) {
    let las = vec![
        LocalAuthority {
            ods_code: la(LA_A),
            name: "Coventry".into(),
            office_hours_phone: "01632 960001".into(),
            edt_phone: "01632 960002".into(),
            office_hours: OfficeHours::standard(),
            secure_email: Some("cov@example.org".into()),
            mesh_mailbox: Some("LA001OT".into()),
        },
        LocalAuthority {
            ods_code: la(LA_B),
            name: "Westminster".into(),
            office_hours_phone: "020 7946 0001".into(),
            edt_phone: "020 7946 0002".into(),
            office_hours: OfficeHours::parse("Mon-Thu 08:30-17:00; Fri 08:30-16:30").unwrap(),
            secure_email: None,
            mesh_mailbox: None,
        },
    ];
    assert_eq!(s.upsert_local_authorities(&las, t0()).unwrap(), 2);
}

fn new_upload(la_code: &str, file_id: &str, sha: &str) -> NewUpload {
    NewUpload {
        id: upload_id(),
        meta: UploadMeta {
            la: la(la_code),
            file_id: file_id.into(),
            mode: UploadMode::Delta,
            file_date: d("2026-11-01"),
            format: "cpis-upload/1".into(),
            channel: "api".into(),
        },
        content_sha256: sha.into(),
        received_at: t0(),
    }
}

fn summary(up: &NewUpload, status: UploadStatus, outcome: Option<FileOutcome>) -> UploadSummary {
    UploadSummary {
        id: up.id.clone(),
        meta: up.meta.clone(),
        content_sha256: up.content_sha256.clone(),
        status,
        file_outcome: outcome,
        message: outcome.map(|o| o.description().to_owned()),
        counts: UploadCounts::default(),
        received_at: up.received_at,
        completed_at: Some(t0() + Duration::seconds(1)),
        duplicate_of: None,
    }
}

fn completed(up: &NewUpload, accepted: u64) -> UploadSummary {
    let mut s = summary(up, UploadStatus::Completed, Some(FileOutcome::AllLoaded));
    for _ in 0..accepted {
        s.counts.add(RecordOutcome::Accepted);
    }
    s
}

fn row(n: NhsNumber, plan: PlanType, start: &str, end: Option<&str>) -> RecordRow {
    let edd = (plan == PlanType::Ucpp).then(|| d("2027-01-15"));
    RecordRow {
        nhs_number: n,
        local_id: Some(format!("LID-{}", n.digits())),
        given_name: Some("Given".into()),
        family_name: Some("Family".into()),
        date_of_birth: d("2015-03-04"),
        plan: Plan::new(plan, d(start), end.map(d), edd).unwrap(),
        sensitive: SensitiveMark::Unstated,
    }
}

fn accepted_row(i: u64, n: NhsNumber) -> RowResult {
    RowResult {
        row: i,
        nhs_number: n.digits(),
        outcome: RecordOutcome::Accepted,
        detail: None,
        message: None,
        new_nhs_number: None,
        local_id: None,
    }
}

/// Applies rows for an LA in one committed upload; returns the upload.
fn apply(s: &dyn Store, la_code: &str, rows: &[RecordRow]) -> NewUpload {
    let up = new_upload(
        la_code,
        &format!("f{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        &format!("h{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
    );
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    for (i, r) in rows.iter().enumerate() {
        tx.add_row_result(&up.id, &accepted_row(i as u64 + 1, r.nhs_number))
            .unwrap();
        tx.upsert(&la(la_code), r, &up.id, t0()).unwrap();
    }
    tx.finish(&completed(&up, rows.len() as u64), None).unwrap();
    up
}

fn record(s: &dyn Store, n: NhsNumber, la_code: &str) -> Option<cpis_store::StoredRecord> {
    s.records_for(n)
        .unwrap()
        .into_iter()
        .find(|r| r.la == la(la_code))
}

fn plan_of(r: &cpis_store::StoredRecord, t: PlanType) -> Option<Plan> {
    r.plans.iter().find(|p| p.plan_type() == t).cloned()
}

fn actor(id: &str, org: Option<&str>) -> AuditActor {
    AuditActor {
        id: id.into(),
        name: format!("{id} name"),
        organisation: org.map(str::to_owned),
        role: "Clinician".into(),
    }
}

fn entry(i: i64, actor: AuditActor, action: &str, subject: Option<NhsNumber>) -> AuditEntry {
    AuditEntry {
        time: t0() + Duration::minutes(i),
        actor,
        action: action.into(),
        subject_nhs: subject,
        trace_id: Some(format!("trace-{i}")),
        outcome: AuditOutcome::Success,
        detail: Some(format!("detail {i}")),
    }
}

fn access(i: i64, n: NhsNumber, kind: AccessKind) -> Access {
    Access {
        id: format!("access-{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        time: t0() + Duration::minutes(i),
        nhs_number: n,
        accessor: Accessor {
            user_id: format!("user-{i}"),
            user_name: format!("User {i}"),
            role: "Clinician".into(),
            organisation: la("RXX01"),
            organisation_name: "General Hospital".into(),
            setting_type: Some(SettingType::EmergencyDepartment),
            nhs: NhsIdentity::default(),
            organisation_phone: None,
            contact: WorkContact::default(),
        },
        kind,
        trace_id: Some(format!("trace-{i}")),
    }
}

/// A first acknowledgement of receipt (no outcome) by `by` at `at`.
fn receipt(by: &str, at: DateTime<Utc>) -> Acknowledgement {
    Acknowledgement {
        by: by.into(),
        by_name: by.into(),
        at,
        details: AckDetails::receipt(),
    }
}

fn notification(la_code: &str, i: i64) -> NewNotification {
    NewNotification {
        id: format!("n-{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        la: la(la_code),
        kind: NotificationKind::Access,
        created_at: t0() + Duration::minutes(i),
        payload: format!("{{\"i\":{i},\"text\":\"caf\u{e9} \\\"quoted\\\"\"}}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The contract.

/// Every kind the domain knows is accepted by the schema and read back as itself (a kind the
/// schema's CHECK does not list would fail the lookup group or housekeeping job writing it).
fn every_notification_kind_is_stored_and_read_back(ctx: &Ctx) {
    let s = ctx.store();
    let mut tx = s.begin_lookups().unwrap();
    for (i, kind) in NotificationKind::ALL.into_iter().enumerate() {
        tx.insert_notification(&NewNotification {
            kind,
            ..notification(LA_A, i as i64)
        })
        .unwrap();
    }
    tx.commit().unwrap();
    let stored: Vec<_> = s
        .notifications(&la(LA_A), 0, 100)
        .unwrap()
        .into_iter()
        .map(|n| n.kind)
        .collect();
    assert_eq!(stored, NotificationKind::ALL);
}

fn migrations_are_idempotent(ctx: &Ctx) {
    let s = ctx.store();
    s.ping().unwrap();
    seed_directory(s);
    // Every backend is at the same schema version (a migration added to one needs its twin).
    let dir = tempfile::tempdir().unwrap();
    let sqlite_version = cpis_store::sqlite::SqliteStore::open(dir.path().join("v.db"))
        .unwrap()
        .schema_version()
        .unwrap();
    let version = ctx.schema_version();
    assert_eq!(version, sqlite_version);
    let again = ctx.reopen();
    let third = ctx.reopen();
    assert_eq!(ctx.schema_version(), version);
    assert_eq!(again.counts().unwrap(), s.counts().unwrap());
    assert_eq!(third.local_authorities().unwrap().len(), 2);
    // The audit chain starts empty and intact on a new database.
    assert_eq!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact {
            entries: 0,
            head_seq: 0,
            head_hash: GENESIS.into()
        }
    );
}

/// Every index on `accesses` is a page each lookup commit writes (issue #16, bytes per lookup):
/// the table keeps its sequence number and the child's history, and no index on the access id,
/// which no query reads by.
fn an_access_is_indexed_by_sequence_and_child_only(ctx: &Ctx) {
    let expected: &[&str] = if ctx.is_postgres() {
        &["accesses_history", "accesses_pkey"]
    } else {
        &["accesses_history"]
    };
    assert_eq!(ctx.index_names("accesses"), expected);
}

/// Tests and benchmarks run on what docs/DEPLOYMENT.md asks of production: a PostgreSQL database
/// in UTF-8 and the C locale (SQLite compares bytes already).
fn a_postgres_test_database_is_in_the_c_locale(ctx: &Ctx) {
    let Backend::Postgres { db } = &ctx.backend else {
        return;
    };
    let mut c = ::postgres::Client::connect(db.url(), ::postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT datcollate::text, datctype::text, pg_encoding_to_char(encoding)::text
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .unwrap();
    let locale: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(locale, ("C".into(), "C".into(), "UTF8".into()));
}

/// On PostgreSQL a foreign key runs a query for every row it checks: an upload's row results
/// (one per row of the file) carry none (migration 0022). SQLite keeps its cheap check.
fn row_results_are_not_checked_row_by_row_on_postgres(ctx: &Ctx) {
    let Backend::Postgres { db } = &ctx.backend else {
        return;
    };
    let mut c = ::postgres::Client::connect(db.url(), ::postgres::NoTls).unwrap();
    let keys: Vec<String> = c
        .query(
            "SELECT conname::text FROM pg_constraint
             WHERE conrelid = 'upload_rows'::regclass AND contype = 'f'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(keys.is_empty(), "{keys:?}");
}

fn concurrent_opens_migrate_once(ctx: &Ctx) {
    let (url, _keep) = ctx.fresh();
    let barrier = Barrier::new(4);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                barrier.wait();
                let store = cpis_store::open(&url).expect("open during a concurrent migration");
                store.ping().unwrap();
                assert_eq!(store.counts().unwrap().records, 0);
            });
        }
    });
    let store = cpis_store::open(&url).unwrap();
    seed_directory(store.as_ref());
}

fn directory_round_trips(ctx: &Ctx) {
    let s = ctx.store();
    assert_eq!(s.local_authority(&la(LA_A)).unwrap(), None);
    seed_directory(s);
    let all = s.local_authorities().unwrap();
    assert_eq!(
        all.iter().map(|l| l.ods_code.as_str()).collect::<Vec<_>>(),
        [LA_A, LA_B]
    );
    let b = s.local_authority(&la(LA_B)).unwrap().unwrap();
    assert_eq!(b, all[1]);
    assert_eq!(b.secure_email, None);
    assert_eq!(all[0].mesh_mailbox.as_deref(), Some("LA001OT"));
    assert_eq!(all[0].office_hours, OfficeHours::standard());
    assert_eq!(
        b.office_hours.to_string(),
        "Mon-Thu 08:30-17:00; Fri 08:30-16:30"
    );

    // Upserting replaces every field.
    let mut a = all[0].clone();
    a.name = "Coventry City Council".into();
    a.secure_email = None;
    a.office_hours = OfficeHours::parse("Mon-Fri 08:00-18:00; Sat 09:00-12:00").unwrap();
    s.upsert_local_authorities(std::slice::from_ref(&a), t0())
        .unwrap();
    assert_eq!(s.local_authority(&la(LA_A)).unwrap(), Some(a.clone()));

    // A MESH mailbox belongs to one LA.
    let mut clash = b.clone();
    clash.mesh_mailbox = Some("LA001OT".into());
    assert!(matches!(
        s.upsert_local_authorities(&[clash], t0()),
        Err(StoreError::Constraint(_))
    ));
    assert_eq!(s.local_authority(&la(LA_B)).unwrap(), Some(b));

    let settings = vec![
        CareSetting {
            ods_code: la("RXX01"),
            name: "General Hospital ED".into(),
            setting_type: SettingType::EmergencyDepartment,
            phone: Some(PhoneNumber::parse("0113 496 0001").unwrap()),
        },
        CareSetting {
            ods_code: la("G81001"),
            name: "Surgery".into(),
            setting_type: SettingType::Gp,
            phone: None,
        },
    ];
    assert_eq!(s.upsert_care_settings(&settings, t0()).unwrap(), 2);
    assert_eq!(
        s.care_setting(&la("G81001")).unwrap(),
        Some(settings[1].clone())
    );
    assert_eq!(
        s.care_setting(&la("RXX01")).unwrap(),
        Some(settings[0].clone()),
        "the contact number round-trips"
    );
    assert_eq!(s.care_setting(&la("ZZZ99")).unwrap(), None);
    let counts = s.counts().unwrap();
    assert_eq!((counts.local_authorities, counts.care_settings), (2, 2));
}

fn demographics_round_trip(ctx: &Ctx) {
    let s = ctx.store();
    let ns = nhs_numbers(0, 4);
    let entries = vec![
        Demographics {
            nhs_number: ns[0],
            status: DemographicStatus::Active,
            date_of_birth: d("2015-03-04"),
            sensitive: false,
            mother_nhs_number: None,
        },
        Demographics {
            nhs_number: ns[1],
            status: DemographicStatus::Superseded(ns[2]),
            date_of_birth: d("2016-01-31"),
            sensitive: false,
            mother_nhs_number: None,
        },
        Demographics {
            nhs_number: ns[2],
            status: DemographicStatus::Active,
            date_of_birth: d("2016-01-31"),
            sensitive: true,
            mother_nhs_number: None,
        },
        Demographics {
            nhs_number: ns[3],
            status: DemographicStatus::Inactive,
            date_of_birth: d("1999-12-31"),
            sensitive: false,
            mother_nhs_number: None,
        },
        Demographics {
            nhs_number: nhs(20),
            status: DemographicStatus::InvalidatedAdoption,
            date_of_birth: d("2019-05-06"),
            sensitive: false,
            mother_nhs_number: None,
        },
        Demographics {
            nhs_number: nhs(21),
            status: DemographicStatus::Active,
            date_of_birth: d("2026-10-31"),
            sensitive: false,
            mother_nhs_number: Some(ns[3]),
        },
    ];
    assert_eq!(s.upsert_demographics(&entries, t0()).unwrap(), 6);
    for e in &entries {
        assert_eq!(s.demographics(e.nhs_number).unwrap().as_ref(), Some(e));
    }
    assert_eq!(s.demographics(nhs(10)).unwrap(), None);
    // The upload's batched read gives the same entries, leaves out the unknown number and takes a
    // number named twice once.
    let mut wanted: Vec<NhsNumber> = entries.iter().map(|e| e.nhs_number).collect();
    wanted.extend([nhs(10), ns[1]]);
    let read = s
        .begin_upload()
        .unwrap()
        .demographics_many(&wanted)
        .unwrap();
    assert_eq!(read.len(), entries.len());
    for e in &entries {
        assert_eq!(read.get(&e.nhs_number), Some(e));
    }
    // An entry without a mother keeps the link an earlier one gave.
    let no_mother = Demographics {
        mother_nhs_number: None,
        ..entries[5].clone()
    };
    s.upsert_demographics(&[no_mother], t0()).unwrap();
    assert_eq!(
        s.demographics(nhs(21)).unwrap().unwrap().mother_nhs_number,
        Some(ns[3])
    );

    // A large batch (the bulk path), naming some people twice: the later entry wins.
    let many = nhs_numbers(100, 1_000);
    let mut batch: Vec<Demographics> = many
        .iter()
        .map(|&n| Demographics {
            nhs_number: n,
            status: DemographicStatus::Active,
            date_of_birth: d("2010-01-01"),
            sensitive: false,
            mother_nhs_number: None,
        })
        .collect();
    batch.push(Demographics {
        nhs_number: many[7],
        status: DemographicStatus::Inactive,
        date_of_birth: d("2011-02-02"),
        sensitive: true,
        mother_nhs_number: None,
    });
    batch.push(Demographics {
        nhs_number: ns[0],
        status: DemographicStatus::Superseded(many[0]),
        date_of_birth: d("2015-03-04"),
        sensitive: false,
        mother_nhs_number: None,
    });
    batch[3].mother_nhs_number = Some(many[4]);
    batch[5].status = DemographicStatus::InvalidatedAdoption;
    s.upsert_demographics(&batch, t0()).unwrap();
    assert_eq!(s.counts().unwrap().demographics, 6 + 1_000);
    assert_eq!(s.demographics(many[3]).unwrap().as_ref(), Some(&batch[3]));
    assert_eq!(s.demographics(many[5]).unwrap().as_ref(), Some(&batch[5]));
    assert_eq!(
        s.demographics(many[500]).unwrap().as_ref(),
        Some(&batch[500])
    );
    assert_eq!(
        s.demographics(many[7]).unwrap().as_ref(),
        Some(&batch[1_000])
    );
    assert_eq!(
        s.demographics(ns[0]).unwrap().unwrap().status,
        DemographicStatus::Superseded(many[0])
    );
}

/// Applies rows as one upload and returns the children whose mark the upload removed.
fn apply_marks(
    s: &dyn Store,
    rows: &[RecordRow],
    deletes: &[(NhsNumber, PlanType)],
) -> Vec<NhsNumber> {
    let up = new_upload(
        LA_A,
        &format!("m{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
        &format!("mh{}", COUNTER.fetch_add(1, Ordering::Relaxed)),
    );
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    for r in rows {
        tx.upsert(&la(LA_A), r, &up.id, t0()).unwrap();
    }
    for (n, p) in deletes {
        tx.delete(&la(LA_A), *n, Some(*p)).unwrap();
    }
    let removed = tx.sensitive_marks_removed().unwrap();
    tx.finish(&completed(&up, rows.len() as u64), None).unwrap();
    removed
}

fn marked(r: RecordRow, mark: SensitiveMark) -> RecordRow {
    RecordRow {
        sensitive: mark,
        ..r
    }
}

fn sensitive_marks_are_kept_per_plan_and_removed_only_explicitly(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let ns = nhs_numbers(0, 2);
    let cpp = |m| marked(row(ns[0], PlanType::Cpp, "2026-01-01", None), m);
    let lac = |m| marked(row(ns[0], PlanType::Lac, "2026-02-01", None), m);
    let is_sensitive = |n| record(s, n, LA_A).unwrap().sensitive;

    // Two rows of one child disagree: the record is sensitive, whichever row comes last.
    assert!(apply_marks(
        s,
        &[cpp(SensitiveMark::Marked), lac(SensitiveMark::Unmarked)],
        &[]
    )
    .is_empty());
    assert!(is_sensitive(ns[0]));
    // An empty column changes nothing.
    assert!(apply_marks(
        s,
        &[cpp(SensitiveMark::Unstated), lac(SensitiveMark::Unstated)],
        &[]
    )
    .is_empty());
    assert!(
        is_sensitive(ns[0]),
        "an empty sensitive column removed the mark"
    );
    // false on one plan while the other is still marked: still sensitive.
    assert!(apply_marks(s, &[lac(SensitiveMark::Unmarked)], &[]).is_empty());
    assert!(is_sensitive(ns[0]));
    // false on the last marked plan: the mark goes, and the upload says so.
    assert_eq!(
        apply_marks(s, &[cpp(SensitiveMark::Unmarked)], &[]),
        vec![ns[0]]
    );
    assert!(!is_sensitive(ns[0]));

    // Marked again; deleting the one marked plan (the other stays) removes the mark too.
    assert!(apply_marks(s, &[cpp(SensitiveMark::Marked)], &[]).is_empty());
    assert!(is_sensitive(ns[0]));
    assert_eq!(apply_marks(s, &[], &[(ns[0], PlanType::Cpp)]), vec![ns[0]]);
    assert!(!is_sensitive(ns[0]));

    // The same through the bulk path (PostgreSQL COPY from 64 rows): many children at once.
    let many = nhs_numbers(100, 200);
    let rows = |m: &dyn Fn(usize) -> SensitiveMark| {
        many.iter()
            .enumerate()
            .flat_map(|(i, n)| {
                [
                    marked(row(*n, PlanType::Cpp, "2026-01-01", None), m(2 * i)),
                    marked(row(*n, PlanType::Lac, "2026-02-01", None), m(2 * i + 1)),
                ]
            })
            .collect::<Vec<_>>()
    };
    // Only each child's CPP is marked.
    let first = rows(&|k| {
        if k % 2 == 0 {
            SensitiveMark::Marked
        } else {
            SensitiveMark::Unmarked
        }
    });
    assert!(apply_marks(s, &first, &[]).is_empty());
    assert!(many.iter().all(|n| is_sensitive(*n)));
    assert!(apply_marks(s, &rows(&|_| SensitiveMark::Unstated), &[]).is_empty());
    assert!(
        many.iter().all(|n| is_sensitive(*n)),
        "unstated rows kept every mark"
    );
    // false on every plan of the first 50 children; the others keep theirs.
    let mut cleared = rows(&|k| {
        if k < 100 {
            SensitiveMark::Unmarked
        } else {
            SensitiveMark::Unstated
        }
    });
    cleared.truncate(200);
    let mut removed = apply_marks(s, &cleared, &[]);
    removed.sort();
    let mut want = many[..50].to_vec();
    want.sort();
    assert_eq!(removed, want);
    assert!(many[..50].iter().all(|n| !is_sensitive(*n)));
    assert!(many[50..].iter().all(|n| is_sensitive(*n)));

    // In one large file a plan's rows disagree, as if applied one by one: the last row stating a
    // mark decides, and an empty column after it keeps that mark.
    let fresh = nhs_numbers(1_000, 100);
    let disagreeing: Vec<RecordRow> = fresh
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            let cpp = |m| marked(row(*n, PlanType::Cpp, "2026-01-01", None), m);
            let last = if i < 50 {
                SensitiveMark::Unstated
            } else {
                SensitiveMark::Unmarked
            };
            [cpp(SensitiveMark::Marked), cpp(last)]
        })
        .collect();
    apply_marks(s, &disagreeing, &[]);
    // (whether the record is marked, how many plans it has)
    let marked_and_plans = |n| {
        let r = record(s, n, LA_A).unwrap();
        (r.sensitive, r.plans.len())
    };
    assert!(fresh[..50]
        .iter()
        .all(|n| marked_and_plans(*n) == (true, 1)));
    assert!(
        fresh[50..]
            .iter()
            .all(|n| marked_and_plans(*n) == (false, 1)),
        "a later row's false was lost to an earlier row's true"
    );
}

fn upload_commits_or_rolls_back_whole(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 3);

    let up = new_upload(LA_A, "file-1", "sha-1");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    let cpp = row(ns[0], PlanType::Cpp, "2026-01-01", None);
    let mut lac = row(ns[0], PlanType::Lac, "2026-02-01", Some("2026-10-01"));
    lac.sensitive = SensitiveMark::Marked;
    tx.upsert(&a, &cpp, &up.id, t0()).unwrap();
    tx.upsert(&a, &lac, &up.id, t0()).unwrap();
    tx.add_row_result(&up.id, &accepted_row(1, ns[0])).unwrap();
    tx.add_row_result(&up.id, &accepted_row(2, ns[0])).unwrap();
    let mut done = completed(&up, 2);
    done.counts.deleted = 0;
    tx.finish(&done, None).unwrap();

    assert_eq!(s.upload(&a, &up.id).unwrap(), Some(done.clone()));
    assert_eq!(
        s.upload(&la(LA_B), &up.id).unwrap(),
        None,
        "another LA's upload"
    );
    let rec = record(s, ns[0], LA_A).unwrap();
    assert_eq!(
        rec.local_id.as_deref(),
        Some(&*format!("LID-{}", ns[0].digits()))
    );
    assert_eq!(rec.date_of_birth, Some(d("2015-03-04")));
    assert!(rec.sensitive, "the later row marked the record sensitive");
    assert_eq!(rec.updated_at, t0());
    assert_eq!(rec.plans, vec![cpp.plan.clone(), lac.plan.clone()]);
    assert_eq!(s.la_record_count(&a).unwrap(), 1);

    // Dropped without finish: nothing of it remains, not even the upload.
    let up2 = new_upload(LA_A, "file-2", "sha-2");
    {
        let mut tx = s.begin_upload().unwrap();
        tx.insert_upload(&up2).unwrap();
        tx.upsert(
            &a,
            &row(ns[1], PlanType::Cpp, "2026-01-01", None),
            &up2.id,
            t0(),
        )
        .unwrap();
        tx.add_row_result(&up2.id, &accepted_row(1, ns[1])).unwrap();
        assert!(tx.delete(&a, ns[0], None).unwrap());
        tx.append_audit(&entry(1, actor("op", None), "upload.apply", None))
            .unwrap();
    }
    assert_eq!(s.upload(&a, &up2.id).unwrap(), None);
    assert!(s.records_for(ns[1]).unwrap().is_empty());
    assert_eq!(record(s, ns[0], LA_A), Some(rec));
    let c = s.counts().unwrap();
    assert_eq!((c.uploads, c.records, c.plans), (1, 1, 2));
    assert_eq!(
        s.audit_search(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap(),
        vec![]
    );

    // The store is usable after a rollback; timestamps keep microseconds, finer parts are cut
    // the same way on every backend.
    let fine = t0() + Duration::nanoseconds(789);
    let up3 = new_upload(LA_A, "file-3", "sha-3");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up3).unwrap();
    tx.upsert(
        &a,
        &row(ns[2], PlanType::Ucpp, "2026-05-01", None),
        &up3.id,
        fine,
    )
    .unwrap();
    tx.finish(&completed(&up3, 1), None).unwrap();
    let r = record(s, ns[2], LA_A).unwrap();
    assert_eq!(r.updated_at, fine.trunc_subsecs(6));
    assert_eq!(
        plan_of(&r, PlanType::Ucpp).unwrap().expected_delivery(),
        Some(d("2027-01-15"))
    );

    // Writing a record for an LA not in the directory breaks a constraint.
    let up4 = new_upload(LA_A, "file-4", "sha-4");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up4).unwrap();
    let res = match tx.upsert(
        &la("X26"),
        &row(ns[2], PlanType::Cpp, "2026-01-01", None),
        &up4.id,
        t0(),
    ) {
        Err(e) => Err(e),
        Ok(()) => tx.finish(&completed(&up4, 1), None),
    };
    assert!(matches!(res, Err(StoreError::Constraint(_))), "{res:?}");
    assert_eq!(s.upload(&a, &up4.id).unwrap(), None);
}

/// A record's `updated_at` says when its own fields last changed: a reload repeating the LA's
/// rows writes nothing, a changed plan changes the plan only, and a changed name or mark is
/// written. One row goes through the per-row statements, 99 through PostgreSQL's bulk path.
/// Rows of one upload are written in file order, also where they are written together (SQLite
/// reads what the LA holds for a whole batch first): a child's second row sees what its first
/// wrote.
fn a_child_named_twice_in_one_upload_takes_its_rows_in_order(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 3);
    let child = ns[1];
    let named = |plan: PlanType, given: &str, mark: SensitiveMark| RecordRow {
        given_name: Some(given.into()),
        sensitive: mark,
        ..row(child, plan, "2026-01-01", None)
    };
    let upload = |n: u32, rows: &[RecordRow]| -> Vec<NhsNumber> {
        let up = new_upload(LA_A, &format!("twice-{n}"), &format!("sha-twice-{n}"));
        let mut tx = s.begin_upload().unwrap();
        tx.insert_upload(&up).unwrap();
        for r in rows {
            tx.upsert(&a, r, &up.id, t0()).unwrap();
        }
        let unmarked = tx.sensitive_marks_removed().unwrap();
        tx.finish(&completed(&up, rows.len() as u64), None).unwrap();
        unmarked
    };
    let others = |n: usize| row(ns[n], PlanType::Cpp, "2026-01-01", None);

    upload(1, &[named(PlanType::Cpp, "One", SensitiveMark::Unstated)]);
    // Renamed, then named as before, in one upload: the last row's name stands.
    upload(
        2,
        &[
            others(0),
            named(PlanType::Cpp, "Two", SensitiveMark::Unstated),
            others(2),
            named(PlanType::Lac, "One", SensitiveMark::Marked),
        ],
    );
    let r = record(s, child, LA_A).unwrap();
    assert_eq!(r.given_name.as_deref(), Some("One"));
    assert_eq!(r.plans.len(), 2);
    assert!(r.sensitive, "the LAC row marked the record");

    // Its mark taken off one plan and then stated false on the other: the record's mark goes,
    // and the removal is reported once.
    let unmarked = upload(
        3,
        &[
            named(PlanType::Lac, "One", SensitiveMark::Unmarked),
            others(0),
            named(PlanType::Cpp, "Three", SensitiveMark::Unmarked),
        ],
    );
    let r = record(s, child, LA_A).unwrap();
    assert_eq!(r.given_name.as_deref(), Some("Three"));
    assert!(!r.sensitive);
    assert_eq!(unmarked, vec![child]);
}

fn a_row_that_changes_nothing_writes_nothing(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 100);
    let mut files = 0;
    let mut upload = |rows: &[RecordRow], at: DateTime<Utc>| {
        files += 1;
        let up = new_upload(LA_A, &format!("file-{files}"), &format!("sha-{files}"));
        let mut tx = s.begin_upload().unwrap();
        tx.insert_upload(&up).unwrap();
        for r in rows {
            tx.upsert(&a, r, &up.id, at).unwrap();
        }
        tx.finish(&completed(&up, rows.len() as u64), None).unwrap();
    };
    let hour = |h: i64| t0() + Duration::hours(h);
    for batch in [&ns[..1], &ns[1..]] {
        let with = |end: Option<&str>, change: &dyn Fn(&mut RecordRow)| -> Vec<RecordRow> {
            batch
                .iter()
                .map(|&n| {
                    let mut r = row(n, PlanType::Cpp, "2026-01-01", end);
                    change(&mut r);
                    r
                })
                .collect()
        };
        let (first, last) = (batch[0], batch[batch.len() - 1]);
        upload(&with(None, &|_| {}), hour(0));
        upload(&with(None, &|_| {}), hour(1));
        for n in [first, last] {
            assert_eq!(record(s, n, LA_A).unwrap().updated_at, hour(0), "unchanged");
        }

        upload(&with(Some("2026-06-30"), &|_| {}), hour(2));
        let r = record(s, last, LA_A).unwrap();
        assert_eq!(
            plan_of(&r, PlanType::Cpp).unwrap().end(),
            Some(d("2026-06-30"))
        );
        assert_eq!(r.updated_at, hour(0), "a plan's change is the plan's");

        let renamed = |r: &mut RecordRow| r.given_name = Some("Renamed".into());
        upload(&with(Some("2026-06-30"), &renamed), hour(3));
        let r = record(s, last, LA_A).unwrap();
        assert_eq!(
            (r.given_name.as_deref(), r.updated_at),
            (Some("Renamed"), hour(3))
        );

        // A mark on an otherwise unchanged row is written, and so is its removal.
        let marked = |r: &mut RecordRow| {
            renamed(r);
            r.sensitive = SensitiveMark::Marked;
        };
        upload(&with(Some("2026-06-30"), &marked), hour(4));
        assert!(record(s, first, LA_A).unwrap().sensitive);
        assert!(record(s, last, LA_A).unwrap().sensitive);
        let unmarked = |r: &mut RecordRow| {
            renamed(r);
            r.sensitive = SensitiveMark::Unmarked;
        };
        upload(&with(Some("2026-06-30"), &unmarked), hour(5));
        assert!(!record(s, first, LA_A).unwrap().sensitive);
        assert!(!record(s, last, LA_A).unwrap().sensitive);
    }
}

fn bulk_upload_keeps_file_order(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 12_000);

    let up = new_upload(LA_A, "big-1", "sha-big-1");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    for (i, &n) in ns.iter().enumerate() {
        tx.add_row_result(&up.id, &accepted_row(i as u64 + 1, n))
            .unwrap();
        tx.upsert(&a, &row(n, PlanType::Cpp, "2026-01-01", None), &up.id, t0())
            .unwrap();
    }
    // Reads and removals see every earlier row.
    assert!(tx.has_record(&a, ns[11_999], Some(PlanType::Cpp)).unwrap());
    assert!(!tx.has_record(&a, ns[11_999], Some(PlanType::Lac)).unwrap());
    assert!(tx.delete(&a, ns[5], None).unwrap());
    tx.upsert(
        &a,
        &row(ns[5], PlanType::Lac, "2026-03-01", None),
        &up.id,
        t0(),
    )
    .unwrap();
    tx.end_plan(&a, ns[6], PlanType::Cpp, d("2026-10-31"), t0())
        .unwrap();
    assert_eq!(tx.open_plans(&a, d("2026-11-01")).unwrap().len(), 11_999);
    tx.finish(&completed(&up, 12_001), None).unwrap();

    assert_eq!(s.la_record_count(&a).unwrap(), 12_000);
    let r5 = record(s, ns[5], LA_A).unwrap();
    assert_eq!(
        r5.plans.iter().map(|p| p.plan_type()).collect::<Vec<_>>(),
        [PlanType::Lac]
    );
    let r6 = record(s, ns[6], LA_A).unwrap();
    assert_eq!(
        plan_of(&r6, PlanType::Cpp).unwrap().end(),
        Some(d("2026-10-31"))
    );
    let rows = s.upload_rows(&a, &up.id, &RowFilter::default()).unwrap();
    assert_eq!(rows.len(), 12_000);
    assert!(rows.windows(2).all(|w| w[0].row + 1 == w[1].row));
    assert_eq!(rows[11_999], accepted_row(12_000, ns[11_999]));

    // A second large file naming each child twice (two plans): the record takes the later row,
    // keeps its creation, and both plans are written.
    let later = t0() + Duration::hours(1);
    let up2 = new_upload(LA_A, "big-2", "sha-big-2");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up2).unwrap();
    for &n in &ns[..6_000] {
        let mut cpp = row(n, PlanType::Cpp, "2026-01-01", Some("2026-06-30"));
        cpp.given_name = Some("First".into());
        let mut lac = row(n, PlanType::Lac, "2026-07-01", None);
        lac.given_name = Some("Second".into());
        lac.sensitive = SensitiveMark::Marked;
        tx.upsert(&a, &cpp, &up2.id, later).unwrap();
        tx.upsert(&a, &lac, &up2.id, later).unwrap();
    }
    tx.finish(&completed(&up2, 12_000), None).unwrap();
    let r = record(s, ns[100], LA_A).unwrap();
    assert_eq!(r.given_name.as_deref(), Some("Second"));
    assert!(r.sensitive);
    assert_eq!(r.updated_at, later);
    assert_eq!(
        r.plans,
        vec![
            Plan::new(PlanType::Cpp, d("2026-01-01"), Some(d("2026-06-30")), None).unwrap(),
            Plan::new(PlanType::Lac, d("2026-07-01"), None, None).unwrap(),
        ]
    );
    let c = s.counts().unwrap();
    assert_eq!((c.records, c.plans), (12_000, 12_000 + 6_000));
}

/// A large batch (PostgreSQL's COPY path from 64 rows) naming one plan three times, at three
/// times, among other children: as if applied row by row, the plan takes its last row's dates,
/// the record its last row's fields and time, and the mark stays the last one stated.
fn a_plan_named_thrice_in_a_large_batch_takes_its_rows_in_order(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 101);
    let child = ns[100];
    let named = |given: &str, start: &str, end: Option<&str>, mark| RecordRow {
        given_name: Some(given.into()),
        sensitive: mark,
        ..row(child, PlanType::Cpp, start, end)
    };
    let up = new_upload(LA_A, "thrice", "sha-thrice");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    let at = |h: i64| t0() + Duration::hours(h);
    let first = named("First", "2026-01-01", None, SensitiveMark::Marked);
    tx.upsert(&a, &first, &up.id, at(0)).unwrap();
    for (i, &n) in ns[..50].iter().enumerate() {
        tx.upsert(
            &a,
            &row(n, PlanType::Cpp, "2026-01-01", None),
            &up.id,
            at(i as i64),
        )
        .unwrap();
    }
    let lac = RecordRow {
        given_name: Some("Second".into()),
        ..row(child, PlanType::Lac, "2026-02-01", None)
    };
    tx.upsert(&a, &lac, &up.id, at(1)).unwrap();
    for &n in &ns[50..100] {
        tx.upsert(
            &a,
            &row(n, PlanType::Cpp, "2026-01-01", None),
            &up.id,
            at(2),
        )
        .unwrap();
    }
    let again = named("Third", "2026-02-15", None, SensitiveMark::Unstated);
    tx.upsert(&a, &again, &up.id, at(3)).unwrap();
    let last = named(
        "Fourth",
        "2026-03-01",
        Some("2026-09-30"),
        SensitiveMark::Unstated,
    );
    tx.upsert(&a, &last, &up.id, at(4)).unwrap();
    tx.finish(&completed(&up, 104), None).unwrap();

    let r = record(s, child, LA_A).unwrap();
    assert_eq!(r.given_name.as_deref(), Some("Fourth"));
    assert_eq!(r.updated_at, at(4));
    assert!(
        r.sensitive,
        "an empty column after a marked row removed the mark"
    );
    assert_eq!(
        r.plans,
        vec![
            Plan::new(PlanType::Cpp, d("2026-03-01"), Some(d("2026-09-30")), None).unwrap(),
            Plan::new(PlanType::Lac, d("2026-02-01"), None, None).unwrap(),
        ]
    );
    assert_eq!(record(s, ns[49], LA_A).unwrap().updated_at, at(49));
    assert_eq!(s.la_record_count(&a).unwrap(), 101);
}

fn idempotency_lookup(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let n = nhs(0);

    let first = new_upload(LA_A, "file-1", "sha-aaa");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&first).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&a, "file-1", "sha-aaa", &first.id)
            .unwrap(),
        None
    );
    tx.upsert(
        &a,
        &row(n, PlanType::Cpp, "2026-01-01", None),
        &first.id,
        t0(),
    )
    .unwrap();
    tx.finish(&completed(&first, 1), None).unwrap();

    // Same file id, or same content, of the same LA.
    let second = new_upload(LA_A, "file-1", "sha-bbb");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&second).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&a, "file-1", "sha-bbb", &second.id)
            .unwrap(),
        Some(first.id.clone())
    );
    assert_eq!(
        tx.find_effective_duplicate(&a, "other", "sha-aaa", &second.id)
            .unwrap(),
        Some(first.id.clone())
    );
    assert_eq!(
        tx.find_effective_duplicate(&a, "other", "sha-zzz", &second.id)
            .unwrap(),
        None
    );
    assert_eq!(
        tx.find_effective_duplicate(&la(LA_B), "file-1", "sha-aaa", &second.id)
            .unwrap(),
        None
    );
    let mut dup = summary(&second, UploadStatus::Duplicate, None);
    dup.duplicate_of = Some(first.id.clone());
    tx.finish(&dup, None).unwrap();
    assert_eq!(s.upload(&a, &second.id).unwrap(), Some(dup));

    // An upload that loaded nothing does not count.
    let empty = new_upload(LA_A, "file-3", "sha-ccc");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&empty).unwrap();
    let mut nothing = summary(
        &empty,
        UploadStatus::Completed,
        Some(FileOutcome::NothingLoaded),
    );
    nothing.counts.add(RecordOutcome::NotFound);
    tx.finish(&nothing, None).unwrap();
    let probe = new_upload(LA_A, "file-3", "sha-ccc");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&probe).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&a, "file-3", "sha-ccc", &probe.id)
            .unwrap(),
        None
    );
    drop(tx);

    // Two effective uploads of one file id: the store refuses the second.
    let again = new_upload(LA_A, "file-1", "sha-ddd");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&again).unwrap();
    let res = tx.finish(&completed(&again, 0), None);
    assert!(matches!(res, Err(StoreError::Constraint(_))), "{res:?}");
    assert_eq!(s.upload(&a, &again.id).unwrap(), None);
    // And an upload id is unique.
    let mut tx = s.begin_upload().unwrap();
    let res = tx.insert_upload(&first);
    assert!(matches!(res, Err(StoreError::Constraint(_))), "{res:?}");
}

fn refused_upload_is_recorded_but_not_effective(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let up = new_upload(LA_A, "bad-file", "sha-bad");
    let mut refused = summary(&up, UploadStatus::Completed, Some(FileOutcome::Malformed));
    refused.message = Some("header row missing".into());
    s.record_refused_upload(&refused).unwrap();
    assert_eq!(s.upload(&la(LA_A), &up.id).unwrap(), Some(refused));
    let probe = new_upload(LA_A, "bad-file", "sha-bad");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&probe).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&la(LA_A), "bad-file", "sha-bad", &probe.id)
            .unwrap(),
        None
    );
}

fn row_results_page_and_filter(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    // More than two multi-row inserts' worth (`RESULTS_PER_INSERT`), and a remainder.
    let ns = nhs_numbers(0, 70);
    let results: Vec<RowResult> = (1..=70u64)
        .map(|i| {
            let n = ns[i as usize - 1];
            match i % 3 {
                0 => RowResult {
                    row: i,
                    nhs_number: "12345".into(),
                    outcome: RecordOutcome::MalformedNhsNumber,
                    detail: Some(DetailCode::NhsNumberLength),
                    message: Some(format!("row {i}: NHS number must have 10 digits")),
                    new_nhs_number: None,
                    // A rejected row keeps the local id it was sent with.
                    local_id: Some(format!("L-{i}")),
                },
                1 => accepted_row(i, n),
                _ => RowResult {
                    row: i,
                    nhs_number: n.digits(),
                    outcome: RecordOutcome::Superseded,
                    detail: None,
                    message: Some("superseded".into()),
                    new_nhs_number: Some(ns[0]),
                    local_id: None,
                },
            }
        })
        .collect();
    let up = new_upload(LA_A, "rows", "sha-rows");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    for r in &results {
        tx.add_row_result(&up.id, r).unwrap();
    }
    let mut sum = summary(&up, UploadStatus::Completed, Some(FileOutcome::Partial));
    for r in &results {
        sum.counts.add(r.outcome);
    }
    tx.finish(&sum, None).unwrap();
    assert_eq!(s.upload(&a, &up.id).unwrap(), Some(sum));

    assert_eq!(
        s.upload_rows(&a, &up.id, &RowFilter::default()).unwrap(),
        results
    );
    let page = s
        .upload_rows(
            &a,
            &up.id,
            &RowFilter {
                after_row: 3,
                limit: 4,
                outcome: None,
            },
        )
        .unwrap();
    assert_eq!(page, results[3..7]);
    let accepted = s
        .upload_rows(
            &a,
            &up.id,
            &RowFilter {
                after_row: 0,
                limit: 100,
                outcome: Some(RecordOutcome::Accepted),
            },
        )
        .unwrap();
    assert_eq!(
        accepted.iter().map(|r| r.row).collect::<Vec<_>>(),
        (1..=70).filter(|i| i % 3 == 1).collect::<Vec<u64>>()
    );
    let malformed_after_3 = s
        .upload_rows(
            &a,
            &up.id,
            &RowFilter {
                after_row: 3,
                limit: 1,
                outcome: Some(RecordOutcome::MalformedNhsNumber),
            },
        )
        .unwrap();
    assert_eq!(malformed_after_3, results[5..6]);
    assert!(s
        .upload_rows(&la(LA_B), &up.id, &RowFilter::default())
        .unwrap()
        .is_empty());
}

fn held_file_round_trip(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let content: Vec<u8> = b"action,nhs_number\nupsert,\xff\x00 binary-safe\n".to_vec();

    let held = new_upload(LA_A, "full-1", "sha-full");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&held).unwrap();
    tx.add_row_result(&held.id, &accepted_row(1, nhs(0)))
        .unwrap();
    let mut sum = summary(&held, UploadStatus::HeldForConfirmation, None);
    sum.completed_at = None;
    sum.counts.plans_ended = 7;
    tx.finish(&sum, Some(&content)).unwrap();
    assert_eq!(s.upload(&a, &held.id).unwrap(), Some(sum));
    assert_eq!(s.held_file(&a, &held.id).unwrap(), Some(content.clone()));
    assert_eq!(s.held_file(&la(LA_B), &held.id).unwrap(), None);
    assert_eq!(s.applied_uploads_since(&a, &held.id).unwrap(), 0);

    // A held upload counts for idempotency.
    let probe = new_upload(LA_A, "full-1", "sha-other");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&probe).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&a, "full-1", "sha-other", &probe.id)
            .unwrap(),
        Some(held.id.clone())
    );
    drop(tx);

    // Confirming claims the held upload inside the applying transaction: earlier row results
    // go, and the file goes when it finishes.
    let mut tx = s.begin_upload().unwrap();
    assert_eq!(
        tx.claim_held(&la(LA_B), &held.id).unwrap(),
        HeldClaim::NotHeld,
        "another LA cannot claim it"
    );
    assert_eq!(tx.claim_held(&a, &held.id).unwrap(), HeldClaim::Claimed);
    tx.add_row_result(&held.id, &accepted_row(1, nhs(2)))
        .unwrap();
    tx.add_row_result(&held.id, &accepted_row(2, nhs(3)))
        .unwrap();
    tx.upsert(
        &a,
        &row(nhs(2), PlanType::Cpp, "2026-01-01", None),
        &held.id,
        t0(),
    )
    .unwrap();
    let done = completed(&held, 2);
    tx.finish(&done, None).unwrap();
    assert_eq!(s.held_file(&a, &held.id).unwrap(), None);
    assert_eq!(s.upload(&a, &held.id).unwrap(), Some(done.clone()));
    let rows = s.upload_rows(&a, &held.id, &RowFilter::default()).unwrap();
    assert_eq!(rows, vec![accepted_row(1, nhs(2)), accepted_row(2, nhs(3))]);

    // A second confirm of the same upload finds it no longer held and changes nothing.
    let mut tx = s.begin_upload().unwrap();
    assert_eq!(tx.claim_held(&a, &held.id).unwrap(), HeldClaim::NotHeld);
    drop(tx);
    assert_eq!(s.upload(&a, &held.id).unwrap(), Some(done));
    let rows = s.upload_rows(&a, &held.id, &RowFilter::default()).unwrap();
    assert_eq!(rows.len(), 2, "the first confirm's report is kept");
}

fn held_upload_goes_stale_after_a_later_upload(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let held = new_upload(LA_A, "full-1", "sha-full");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&held).unwrap();
    tx.add_row_result(&held.id, &accepted_row(1, nhs(0)))
        .unwrap();
    let mut sum = summary(&held, UploadStatus::HeldForConfirmation, None);
    sum.completed_at = None;
    tx.finish(&sum, Some(b"held")).unwrap();

    apply(s, LA_A, &[row(nhs(1), PlanType::Cpp, "2026-01-01", None)]);
    assert_eq!(s.applied_uploads_since(&a, &held.id).unwrap(), 1);
    assert_eq!(s.applied_uploads_since(&la(LA_B), &held.id).unwrap(), 0);

    // The claim inside the applying transaction sees the later upload: nothing changes.
    let mut tx = s.begin_upload().unwrap();
    assert_eq!(tx.claim_held(&a, &held.id).unwrap(), HeldClaim::Stale);
    drop(tx);
    assert_eq!(s.upload(&a, &held.id).unwrap(), Some(sum));
    assert_eq!(
        s.held_file(&a, &held.id).unwrap(),
        None,
        "a stale held file (personal data) is not kept"
    );
    assert_eq!(
        s.upload_rows(&a, &held.id, &RowFilter::default())
            .unwrap()
            .len(),
        1
    );

    // A stale held upload no longer blocks the same file id or the same content.
    let again = new_upload(LA_A, "full-1", "sha-full");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&again).unwrap();
    assert_eq!(
        tx.find_effective_duplicate(&a, "full-1", "sha-full", &again.id)
            .unwrap(),
        None
    );
}

fn open_plans_and_end_plan(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 5);
    apply(
        s,
        LA_A,
        &[
            row(ns[0], PlanType::Cpp, "2026-01-01", None),
            row(ns[1], PlanType::Lac, "2026-12-01", None),
            row(ns[2], PlanType::Cpp, "2025-01-01", Some("2026-10-01")),
            row(ns[3], PlanType::Cpp, "2025-01-01", Some("2026-12-31")),
            row(ns[4], PlanType::Cpp, "2025-01-01", Some("2026-11-01")),
        ],
    );
    apply(s, LA_B, &[row(ns[0], PlanType::Lac, "2026-01-01", None)]);

    let file_date = d("2026-11-01");
    let up = new_upload(LA_A, "full", "sha-full");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    let open: BTreeSet<_> = tx.open_plans(&a, file_date).unwrap().into_iter().collect();
    assert_eq!(
        open,
        BTreeSet::from([
            (ns[0], PlanType::Cpp),
            (ns[1], PlanType::Lac),
            (ns[3], PlanType::Cpp)
        ])
    );
    let later = t0() + Duration::days(1);
    for (n, p) in &open {
        tx.end_plan(&a, *n, *p, file_date, later).unwrap();
    }
    // A plan ended on its (later) start date is still open on the file date.
    assert_eq!(
        tx.open_plans(&a, file_date).unwrap(),
        vec![(ns[1], PlanType::Lac)]
    );
    tx.finish(&completed(&up, 0), None).unwrap();

    let end = |n: NhsNumber, p: PlanType| plan_of(&record(s, n, LA_A).unwrap(), p).unwrap().end();
    assert_eq!(end(ns[0], PlanType::Cpp), Some(file_date));
    assert_eq!(
        end(ns[1], PlanType::Lac),
        Some(d("2026-12-01")),
        "never before its start"
    );
    assert_eq!(end(ns[3], PlanType::Cpp), Some(file_date));
    assert_eq!(
        end(ns[2], PlanType::Cpp),
        Some(d("2026-10-01")),
        "untouched"
    );
    assert_eq!(
        record(s, ns[0], LA_A).unwrap().updated_at,
        t0(),
        "ending a plan leaves the record"
    );
    // Another LA's plans are not this LA's.
    assert_eq!(
        plan_of(&record(s, ns[0], LA_B).unwrap(), PlanType::Lac)
            .unwrap()
            .end(),
        None
    );
}

fn delete_semantics(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let a = la(LA_A);
    let ns = nhs_numbers(0, 4);
    apply(
        s,
        LA_A,
        &[
            row(ns[0], PlanType::Cpp, "2026-01-01", None),
            row(ns[0], PlanType::Lac, "2026-01-01", None),
            row(ns[1], PlanType::Cpp, "2026-01-01", None),
        ],
    );
    apply(s, LA_B, &[row(ns[1], PlanType::Cpp, "2026-01-01", None)]);

    let up = new_upload(LA_A, "deletes", "sha-del");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    assert!(tx.has_record(&a, ns[0], None).unwrap());
    assert!(tx.has_record(&a, ns[0], Some(PlanType::Lac)).unwrap());
    assert!(!tx.has_record(&a, ns[0], Some(PlanType::Ucpp)).unwrap());
    // One plan: the record stays while it has another.
    assert!(tx.delete(&a, ns[0], Some(PlanType::Cpp)).unwrap());
    assert!(tx.has_record(&a, ns[0], None).unwrap());
    assert!(!tx.delete(&a, ns[0], Some(PlanType::Cpp)).unwrap());
    // The last plan: the record goes too.
    assert!(tx.delete(&a, ns[0], Some(PlanType::Lac)).unwrap());
    assert!(!tx.has_record(&a, ns[0], None).unwrap());
    // The whole record, of this LA only.
    assert!(tx.delete(&a, ns[1], None).unwrap());
    assert!(!tx.delete(&a, ns[1], None).unwrap());
    assert!(!tx.delete(&a, ns[3], None).unwrap());
    // Written earlier in the same transaction, then deleted.
    tx.upsert(
        &a,
        &row(ns[2], PlanType::Cpp, "2026-01-01", None),
        &up.id,
        t0(),
    )
    .unwrap();
    assert!(tx.has_record(&a, ns[2], Some(PlanType::Cpp)).unwrap());
    assert!(tx.delete(&a, ns[2], None).unwrap());
    tx.finish(&completed(&up, 0), None).unwrap();

    assert!(s.records_for(ns[0]).unwrap().is_empty());
    assert!(s.records_for(ns[2]).unwrap().is_empty());
    let left = s.records_for(ns[1]).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].la, la(LA_B));
    let c = s.counts().unwrap();
    assert_eq!((c.records, c.plans), (1, 1));
}

/// The evidence export's query: every unscheduled access to one child, oldest first, a page at a
/// time after a cursor; silent lookups, misses and other children's accesses never appear.
fn access_history_pages_oldest_first(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let n = nhs(0);
    let other = nhs(1);
    let mut unscheduled = Vec::new();
    let mut tx = s.begin_lookups().unwrap();
    for i in 0..7 {
        let a = access(i, n, AccessKind::Unscheduled);
        tx.insert_access(&a).unwrap();
        unscheduled.push(a);
        tx.insert_access(&access(i, n, AccessKind::Silent)).unwrap();
        tx.insert_access(&access(i, other, AccessKind::Unscheduled))
            .unwrap();
    }
    tx.insert_access(&access(9, n, AccessKind::Miss)).unwrap();
    tx.commit().unwrap();

    let mut read = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = s.access_history_page(n, after, 3).unwrap();
        assert!(page.len() <= 3, "a page holds at most the limit");
        let Some((last, _)) = page.last() else { break };
        assert!(*last > after, "the cursor moves forward");
        after = *last;
        pages += 1;
        read.extend(page.into_iter().map(|(_, a)| a));
    }
    assert_eq!(pages, 3, "7 accesses in pages of 3");
    assert_eq!(read, unscheduled, "every unscheduled access, oldest first");
    assert_eq!(s.access_history_page(n, 0, 100).unwrap().len(), 7);
    assert!(s.access_history_page(nhs(2), 0, 100).unwrap().is_empty());
}

fn lookup_tx_writes_accesses_and_notifications(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let n = nhs(0);
    apply(s, LA_A, &[row(n, PlanType::Cpp, "2026-01-01", None)]);
    apply(s, LA_B, &[row(n, PlanType::Lac, "2026-01-01", None)]);

    let first = access(1, n, AccessKind::Unscheduled);
    let to_a = notification(LA_A, 1);
    let to_b = notification(LA_B, 1);
    let view = s.lookup_view(n, 25, t0()).unwrap();
    assert_eq!(
        view.records
            .iter()
            .map(|r| r.la.as_str())
            .collect::<Vec<_>>(),
        [LA_A, LA_B]
    );
    assert!(view.history.is_empty());
    assert_eq!(view.through, 0);
    let mut tx = s.begin_lookups().unwrap();
    tx.insert_access(&first).unwrap();
    tx.append_audit(&entry(
        1,
        actor("u1", Some("RXX01")),
        "lookup.unscheduled",
        Some(n),
    ))
    .unwrap();
    tx.insert_notification(&to_a).unwrap();
    tx.insert_notification(&to_b).unwrap();
    assert_eq!(
        tx.unscheduled_after(n, view.through).unwrap(),
        vec![first.clone()]
    );
    tx.commit().unwrap();

    let silent = access(2, n, AccessKind::Silent);
    let miss = access(2, nhs(1), AccessKind::Miss);
    let second = access(3, n, AccessKind::Unscheduled);
    let to_a2 = notification(LA_A, 3);
    let mut tx = s.begin_lookups().unwrap();
    tx.insert_access(&silent).unwrap();
    tx.insert_access(&miss).unwrap();
    tx.insert_access(&second).unwrap();
    tx.insert_notification(&to_a2).unwrap();
    // A group of lookups appends several entries in one transaction.
    tx.append_audit(&entry(
        2,
        actor("u2", Some("RXX01")),
        "lookup.silent",
        Some(n),
    ))
    .unwrap();
    tx.append_audit(&entry(
        3,
        actor("u3", Some("RXX01")),
        "lookup.unscheduled",
        Some(n),
    ))
    .unwrap();
    tx.commit().unwrap();

    // Dropped without commit: nothing.
    {
        let mut tx = s.begin_lookups().unwrap();
        tx.insert_access(&access(4, n, AccessKind::Unscheduled))
            .unwrap();
        tx.insert_notification(&notification(LA_A, 4)).unwrap();
        tx.append_audit(&entry(4, actor("u1", None), "lookup.unscheduled", Some(n)))
            .unwrap();
    }

    assert_eq!(
        s.recent_accesses(n, 25).unwrap(),
        vec![second.clone(), first.clone()]
    );
    assert_eq!(s.recent_accesses(n, 1).unwrap(), vec![second]);
    assert!(
        s.recent_accesses(nhs(1), 25).unwrap().is_empty(),
        "misses are not history"
    );
    let c = s.counts().unwrap();
    assert_eq!((c.accesses, c.notifications), (4, 3));

    let a_all = s.notifications(&la(LA_A), 0, 100).unwrap();
    assert_eq!(
        a_all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [&to_a.id, &to_a2.id]
    );
    assert!(a_all[0].seq < a_all[1].seq);
    let got = &a_all[0];
    assert_eq!(
        (
            got.la.clone(),
            got.kind,
            got.created_at,
            got.payload.as_str()
        ),
        (
            to_a.la.clone(),
            to_a.kind,
            to_a.created_at,
            to_a.payload.as_str()
        )
    );
    assert_eq!(
        (got.acknowledged_at, got.acknowledged_by.as_deref()),
        (None, None)
    );
    let after_first = s.notifications(&la(LA_A), a_all[0].seq, 100).unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].id, to_a2.id);
    assert_eq!(s.notifications(&la(LA_A), 0, 1).unwrap().len(), 1);
    assert!(s
        .notifications(&la(LA_A), a_all[1].seq, 100)
        .unwrap()
        .is_empty());
    let b_all = s.notifications(&la(LA_B), 0, 100).unwrap();
    assert_eq!(
        b_all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        [&to_b.id]
    );
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { entries: 3, .. }
    ));
}

/// One group of lookups writing several accesses, audit entries and notifications for the same
/// LAs (PostgreSQL writes them at the commit, one statement per table): the accesses read back
/// within the group as the access log stores them, each LA's notifications continue its cursor
/// in the order they were made, every active webhook of the LA gets a delivery of each, and the
/// audit chain stays whole.
fn a_lookup_group_writes_everything_in_order(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let (n, m) = (nhs(0), nhs(1));
    apply(s, LA_A, &[row(n, PlanType::Cpp, "2026-01-01", None)]);
    apply(s, LA_B, &[row(m, PlanType::Lac, "2026-01-01", None)]);
    let hook = |id: &str, la_code: &str| cpis_store::Webhook {
        id: id.into(),
        la: la(la_code),
        url: format!("https://{id}.example/cpis"),
        secret: "signing-secret".into(),
        created_at: t0(),
    };
    let op = || entry(0, actor("op", None), "admin.webhook.add", None);
    s.add_webhook(&hook("a-one", LA_A), &op()).unwrap();
    s.add_webhook(&hook("a-two", LA_A), &op()).unwrap();
    s.add_webhook(&hook("a-gone", LA_A), &op()).unwrap();
    assert!(s.remove_webhook(&la(LA_A), "a-gone", t0(), &op()).unwrap());
    // An earlier notification: the group's numbers continue after it.
    let before = notification(LA_A, 1);
    insert_all(s, std::slice::from_ref(&before));

    let mut first = access(2, n, AccessKind::Unscheduled);
    first.time += Duration::nanoseconds(1_234_567);
    first.accessor.organisation_phone = Some("01632 960000".parse().unwrap());
    let (silent, other, second) = (
        access(3, n, AccessKind::Silent),
        access(3, m, AccessKind::Unscheduled),
        access(4, n, AccessKind::Unscheduled),
    );
    let made = [
        notification(LA_A, 2),
        notification(LA_B, 3),
        notification(LA_A, 3),
        notification(LA_A, 4),
    ];
    let mut tx = s.begin_lookups().unwrap();
    for (i, a) in [&first, &silent, &other, &second].into_iter().enumerate() {
        tx.insert_access(a).unwrap();
        let i = i as i64 + 2;
        tx.append_audit(&entry(
            i,
            actor("u1", Some("RXX01")),
            "lookup",
            Some(a.nhs_number),
        ))
        .unwrap();
    }
    for x in &made {
        tx.insert_notification(x).unwrap();
    }
    let mut logged = first.clone();
    logged.time = t0() + Duration::minutes(2) + Duration::microseconds(1_234);
    logged.accessor.organisation_phone = None;
    assert_eq!(
        tx.unscheduled_after(n, 0).unwrap(),
        vec![logged.clone(), second.clone()],
        "the group's own unscheduled accesses of the child, oldest first, as the log keeps them"
    );
    tx.commit().unwrap();

    assert_eq!(s.recent_accesses(n, 25).unwrap(), vec![second, logged]);
    assert_eq!(s.recent_accesses(m, 25).unwrap(), vec![other]);
    let a_all = s.notifications(&la(LA_A), 0, 100).unwrap();
    assert_eq!(
        a_all
            .iter()
            .map(|x| (x.id.as_str(), x.seq))
            .collect::<Vec<_>>(),
        [
            (before.id.as_str(), 1),
            (made[0].id.as_str(), 2),
            (made[2].id.as_str(), 3),
            (made[3].id.as_str(), 4)
        ]
    );
    assert_eq!(a_all[3].payload, made[3].payload);
    let b_all = s.notifications(&la(LA_B), 0, 100).unwrap();
    assert_eq!(
        b_all
            .iter()
            .map(|x| (x.id.as_str(), x.seq))
            .collect::<Vec<_>>(),
        [(made[1].id.as_str(), 1)]
    );
    let due = s
        .claim_deliveries(t0() + Duration::days(1), t0() + Duration::days(2), 100)
        .unwrap();
    let mut queued: Vec<(String, String)> = due
        .iter()
        .map(|d| (d.notification.id.clone(), d.webhook.id.clone()))
        .collect();
    queued.sort();
    let mut wanted: Vec<(String, String)> = [&before, &made[0], &made[2], &made[3]]
        .iter()
        .flat_map(|x| ["a-one", "a-two"].map(|h| (x.id.clone(), h.to_owned())))
        .collect();
    wanted.sort();
    assert_eq!(
        queued, wanted,
        "each LA A notification to each active LA A webhook"
    );
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { entries: 8, .. }
    ));
}

/// Writers on several servers commit lookups (access, audit entry, notification) concurrently
/// while an LA reads by cursor: the reader sees every notification exactly once, in cursor order
/// (a later number never becomes visible before an earlier one), and the audit chain stays whole.
fn notifications_by_cursor_never_skip_under_concurrency(ctx: &Ctx) {
    const WRITERS: usize = 4;
    const TXS: usize = 15;
    const PER_TX: usize = 2;
    let s = ctx.store();
    seed_directory(s);
    let others: Vec<Box<dyn Store>> = (0..WRITERS).map(|_| ctx.reopen()).collect();
    let total = WRITERS * TXS * PER_TX;
    let a = la(LA_A);
    let seen = std::thread::scope(|scope| {
        for (w, store) in others.iter().enumerate() {
            scope.spawn(move || {
                for t in 0..TXS {
                    let mut tx = store.begin_lookups().unwrap();
                    for _ in 0..PER_TX {
                        tx.insert_access(&access(t as i64, nhs(w), AccessKind::Unscheduled))
                            .unwrap();
                        let who = actor(&format!("writer-{w}"), Some("RXX01"));
                        tx.append_audit(&entry(t as i64, who, "lookup.unscheduled", Some(nhs(w))))
                            .unwrap();
                        tx.insert_notification(&notification(LA_A, t as i64))
                            .unwrap();
                    }
                    if t % 3 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    tx.commit().unwrap();
                    // As each server's lookup service does (SQLite: what its lookup log holds).
                    store.drain_lookup_spool().unwrap();
                }
            });
        }
        let reader = scope.spawn(|| {
            let mut cursor = 0;
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while seen.len() < total && std::time::Instant::now() < deadline {
                for n in s.notifications(&a, cursor, 7).unwrap() {
                    assert!(n.seq > cursor);
                    cursor = n.seq;
                    seen.push(n.id);
                }
            }
            seen
        });
        reader.join().unwrap()
    });
    assert_eq!(seen.len(), total, "the reader saw every notification");
    let distinct: BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), total, "and none twice");
    assert_eq!(s.notifications(&a, 0, 10_000).unwrap().len(), total);
    // The audit chain stayed linear across the servers.
    match s.audit_verify().unwrap() {
        AuditVerification::Intact { entries, .. } => assert_eq!(entries, total as u64),
        broken => panic!("{broken:?}"),
    }
}

fn acknowledge_is_idempotent_and_la_scoped(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let note = notification(LA_A, 1);
    let mut tx = s.begin_lookups().unwrap();
    tx.insert_notification(&note).unwrap();
    tx.commit().unwrap();

    let t1 = t0() + Duration::minutes(5);
    assert_eq!(
        s.acknowledge(&la(LA_B), &note.id, "intruder", t1).unwrap(),
        Ack::NotFound
    );
    assert_eq!(
        s.acknowledge(&la(LA_A), "no-such-id", "sw", t1).unwrap(),
        Ack::NotFound
    );
    assert_eq!(
        s.acknowledge(&la(LA_A), &note.id, "social.worker", t1)
            .unwrap(),
        Ack::Acknowledged(t1)
    );
    assert_eq!(
        s.acknowledge(
            &la(LA_A),
            &note.id,
            "someone.else",
            t1 + Duration::minutes(1)
        )
        .unwrap(),
        Ack::AlreadyAcknowledged(t1)
    );
    let stored = &s.notifications(&la(LA_A), 0, 10).unwrap()[0];
    assert_eq!(stored.acknowledged_at, Some(t1));
    assert_eq!(stored.acknowledged_by.as_deref(), Some("social.worker"));
}

/// `acknowledge_audited`: the acknowledgement and its audit entry are one transaction. A first
/// acknowledgement writes `acked`, another LA's (or no) notification writes `refused`, a repeat
/// writes nothing; when the audit entry cannot be written nothing is acknowledged, and when the
/// acknowledgement cannot be written nothing is audited.
fn acknowledgement_and_its_audit_entry_commit_together(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let (first, second) = (notification(LA_A, 1), notification(LA_A, 2));
    let mut tx = s.begin_lookups().unwrap();
    tx.insert_notification(&first).unwrap();
    tx.insert_notification(&second).unwrap();
    tx.commit().unwrap();
    let t1 = t0() + Duration::minutes(5);
    let sw = actor("social.worker", Some(LA_A));
    let acked = |id: &str| AuditEntry {
        detail: Some(format!("notification {id}")),
        ..entry(5, sw.clone(), "notification.ack", None)
    };
    let refused = |id: &str| AuditEntry {
        outcome: AuditOutcome::Denied,
        detail: Some(format!("notification {id}: not one of the LA's")),
        ..entry(5, sw.clone(), "notification.ack", None)
    };
    let trail = || -> Vec<(String, AuditOutcome)> {
        let q = AuditQuery {
            action_prefix: Some("notification.ack".into()),
            limit: 100,
            ..Default::default()
        };
        let mut v: Vec<_> = s
            .audit_search(&q)
            .unwrap()
            .into_iter()
            .map(|r| (r.entry.detail.unwrap_or_default(), r.entry.outcome))
            .collect();
        v.reverse();
        v
    };
    let ack_of = |id: &str| {
        s.notifications(&la(LA_A), 0, 10)
            .unwrap()
            .into_iter()
            .find(|n| n.id == id)
            .unwrap()
            .acknowledged_at
    };

    // Another LA's notification: not acknowledged, and the probe is audited as denied.
    assert_eq!(
        s.acknowledge_audited(
            &la(LA_B),
            &first.id,
            &receipt("intruder", t1),
            &acked(&first.id),
            &refused(&first.id)
        )
        .unwrap(),
        Ack::NotFound
    );
    assert_eq!(ack_of(&first.id), None);
    assert_eq!(
        trail(),
        vec![(refused(&first.id).detail.unwrap(), AuditOutcome::Denied)]
    );

    // The first acknowledgement writes its entry; a repeat writes none.
    assert_eq!(
        s.acknowledge_audited(
            &la(LA_A),
            &first.id,
            &receipt("social.worker", t1),
            &acked(&first.id),
            &refused(&first.id)
        )
        .unwrap(),
        Ack::Acknowledged(t1)
    );
    assert_eq!(
        s.acknowledge_audited(
            &la(LA_A),
            &first.id,
            &receipt("social.worker", t1 + Duration::minutes(1)),
            &acked(&first.id),
            &refused(&first.id)
        )
        .unwrap(),
        Ack::AlreadyAcknowledged(t1)
    );
    assert_eq!(ack_of(&first.id), Some(t1));
    assert_eq!(trail().len(), 2);
    assert_eq!(
        trail()[1],
        (acked(&first.id).detail.unwrap(), AuditOutcome::Success)
    );

    // The audit entry cannot be written: the acknowledgement is rolled back with it.
    ctx.raw(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
    )
    .unwrap();
    assert!(s
        .acknowledge_audited(
            &la(LA_A),
            &second.id,
            &receipt("social.worker", t1),
            &acked(&second.id),
            &refused(&second.id)
        )
        .is_err());
    assert_eq!(
        ack_of(&second.id),
        None,
        "acknowledged without its audit entry"
    );
    ctx.raw(
        "DROP TRIGGER refuse_audit;",
        "DROP TRIGGER refuse_audit ON audit_log;",
    )
    .unwrap();

    // The acknowledgement cannot be written: no audit entry either.
    ctx.raw(
        "CREATE TRIGGER refuse_ack BEFORE UPDATE ON notifications BEGIN SELECT RAISE(ABORT, 'ack refused'); END;",
        "CREATE FUNCTION refuse_ack() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ack refused'; END $$;
         CREATE TRIGGER refuse_ack BEFORE UPDATE ON notifications FOR EACH ROW EXECUTE FUNCTION refuse_ack();",
    )
    .unwrap();
    assert!(s
        .acknowledge_audited(
            &la(LA_A),
            &second.id,
            &receipt("social.worker", t1),
            &acked(&second.id),
            &refused(&second.id)
        )
        .is_err());
    assert_eq!(
        trail().len(),
        2,
        "audited an acknowledgement that was not written"
    );
    ctx.raw(
        "DROP TRIGGER refuse_ack;",
        "DROP TRIGGER refuse_ack ON notifications;",
    )
    .unwrap();

    // With both guards gone it goes through, and the chain is intact.
    assert_eq!(
        s.acknowledge_audited(
            &la(LA_A),
            &second.id,
            &receipt("social.worker", t1),
            &acked(&second.id),
            &refused(&second.id)
        )
        .unwrap(),
        Ack::Acknowledged(t1)
    );
    assert_eq!(trail().len(), 3);
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { entries: 3, .. }
    ));
}

fn login_failures_count_atomically_under_concurrency(ctx: &Ctx) {
    let s = ctx.store();
    let user = User {
        id: "u-bob".into(),
        username: "bob.clinician".into(),
        display_name: "Bob".into(),
        kind: UserKind::User,
        organisation: la("RXX01"),
        role: "Clinician".into(),
        permissions: Permissions::new([Permission::ViewNotify]),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: t0(),
    };
    s.create_user(&user).unwrap();
    let lock_until = t0() + chrono::Duration::minutes(15);
    // Four failures count up and do not lock; the fifth locks and restarts the count.
    for n in 1..=4 {
        assert_eq!(
            s.record_login_failure(&user.id, 5, lock_until, t0())
                .unwrap(),
            None
        );
        assert_eq!(s.user_by_id(&user.id).unwrap().unwrap().failed_logins, n);
    }
    assert_eq!(
        s.record_login_failure(&user.id, 5, lock_until, t0())
            .unwrap(),
        Some(lock_until)
    );
    let locked = s.user_by_id(&user.id).unwrap().unwrap();
    assert_eq!(
        (locked.failed_logins, locked.locked_until),
        (0, Some(lock_until))
    );
    // A good password while locked changes nothing; after the lock expires it clears.
    assert!(!s.clear_login_failures(&user.id, t0()).unwrap());
    assert_eq!(
        s.user_by_id(&user.id).unwrap().unwrap().locked_until,
        Some(lock_until)
    );
    assert!(s
        .clear_login_failures(&user.id, lock_until + chrono::Duration::seconds(1))
        .unwrap());
    let cleared = s.user_by_id(&user.id).unwrap().unwrap();
    assert_eq!((cleared.failed_logins, cleared.locked_until), (0, None));

    // 32 failures at once, 8 threads: every one counts (32 = 6 locks of 5, then 2).
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..4 {
                    s.record_login_failure(&user.id, 5, lock_until, t0())
                        .unwrap();
                }
            });
        }
    });
    let after = s.user_by_id(&user.id).unwrap().unwrap();
    assert_eq!(after.failed_logins, 2, "a failure was lost");
    assert_eq!(after.locked_until, Some(lock_until));
    assert!(s
        .record_login_failure("u-nobody", 5, lock_until, t0())
        .is_err());
}

fn users_tokens_and_sessions(ctx: &Ctx) {
    let s = ctx.store();
    let mut alice = User {
        id: "u-alice".into(),
        username: "alice.clinician".into(),
        display_name: "Alice".into(),
        kind: UserKind::User,
        organisation: la("RXX01"),
        role: "Clinician".into(),
        permissions: Permissions::new([Permission::ViewNotify, Permission::ViewSilent]),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: t0(),
    };
    let system = User {
        id: "u-sys".into(),
        username: "Zeta-system".into(),
        display_name: "EPR".into(),
        kind: UserKind::System,
        organisation: la("RXX01"),
        role: "System".into(),
        permissions: Permissions::new([Permission::ViewNotify]),
        password_hash: None,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: t0(),
    };
    s.create_user(&alice).unwrap();
    s.create_user(&system).unwrap();
    assert_eq!(
        s.user_by_username("alice.clinician").unwrap(),
        Some(alice.clone())
    );
    assert_eq!(s.user_by_id("u-sys").unwrap(), Some(system.clone()));
    assert_eq!(s.user_by_username("nobody").unwrap(), None);
    // Byte order, as SQLite sorts: upper case first.
    assert_eq!(
        s.list_users()
            .unwrap()
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["Zeta-system", "alice.clinician"]
    );
    let mut clash = system.clone();
    clash.id = "u-other".into();
    assert!(matches!(
        s.create_user(&clash),
        Err(StoreError::Constraint(_))
    ));

    alice.failed_logins = 3;
    alice.locked_until = Some(t0() + Duration::minutes(15));
    alice.disabled = true;
    alice.permissions = Permissions::new([Permission::Admin]);
    s.update_user(&alice, t0()).unwrap();
    assert_eq!(s.user_by_id("u-alice").unwrap(), Some(alice.clone()));
    let mut ghost = alice.clone();
    ghost.id = "u-ghost".into();
    assert!(matches!(
        s.update_user(&ghost, t0()),
        Err(StoreError::Constraint(_))
    ));

    let day = Duration::days(1);
    s.create_api_token(&NewApiToken {
        id: "t1".into(),
        user_id: "u-sys".into(),
        token_hash: "hash-expiring".into(),
        label: "epr".into(),
        created_at: t0(),
        expires_at: Some(t0() + day),
    })
    .unwrap();
    s.create_api_token(&NewApiToken {
        id: "t2".into(),
        user_id: "u-sys".into(),
        token_hash: "hash-forever".into(),
        label: "epr".into(),
        created_at: t0(),
        expires_at: None,
    })
    .unwrap();
    assert_eq!(
        s.user_by_token_hash("hash-expiring", t0()).unwrap(),
        Some(system.clone())
    );
    assert_eq!(
        s.user_by_token_hash("hash-expiring", t0() + day).unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        s.user_by_token_hash("hash-forever", t0() + day * 900)
            .unwrap(),
        Some(system.clone())
    );
    assert_eq!(s.user_by_token_hash("hash-unknown", t0()).unwrap(), None);
    let orphan = NewApiToken {
        id: "t3".into(),
        user_id: "u-missing".into(),
        token_hash: "hash-orphan".into(),
        label: "x".into(),
        created_at: t0(),
        expires_at: None,
    };
    assert!(matches!(
        s.create_api_token(&orphan),
        Err(StoreError::Constraint(_))
    ));

    let session = Session {
        id_hash: "session-hash".into(),
        user_id: "u-alice".into(),
        csrf_token: "csrf".into(),
        created_at: t0(),
        expires_at: t0() + Duration::hours(8),
        nhs: NhsIdentity::default(),
        assurance_level: None,
        contact: WorkContact::from_claims(Some("07700 900123"), Some("a.clinician@nhs.net")),
    };
    assert!(session.contact.phone.is_some() && session.contact.email.is_some());
    s.create_session(&session).unwrap();
    let (got, user) = s
        .session("session-hash", t0() + Duration::hours(1))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            got.id_hash,
            got.user_id,
            got.csrf_token,
            got.created_at,
            got.expires_at
        ),
        (
            session.id_hash.clone(),
            session.user_id.clone(),
            session.csrf_token.clone(),
            session.created_at,
            session.expires_at
        )
    );
    assert_eq!(user, alice);
    assert_eq!(got.contact, session.contact, "the work contact round-trips");
    assert!(
        s.session("session-hash", t0() + Duration::hours(8))
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(s.session("other", t0()).unwrap().is_none());
    s.delete_session("session-hash").unwrap();
    assert!(s.session("session-hash", t0()).unwrap().is_none());
}

/// An administrative identity change and its audit entry commit together; a change that fails
/// appends no entry and changes nothing.
fn identity_changes_commit_with_their_audit_entry(ctx: &Ctx) {
    let s = ctx.store();
    let admin = || actor("operator:ops", Some("CPISOPS"));
    let all_audit = || {
        s.audit_search(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| (r.seq, r.entry))
        .collect::<Vec<_>>()
    };
    let intact = |n: u64| match s.audit_verify().unwrap() {
        AuditVerification::Intact {
            entries, head_seq, ..
        } => assert_eq!((entries, head_seq), (n, n)),
        broken => panic!("{broken:?}"),
    };
    // An entry already in the chain: the changes' entries follow it.
    s.append_audit(&entry(0, actor("alice", Some("RXX01")), "auth.login", None))
        .unwrap();

    let mut bob = User {
        id: "u-bob".into(),
        username: "bob.system".into(),
        display_name: "Bob's EPR".into(),
        kind: UserKind::System,
        organisation: la("RXX01"),
        role: "System".into(),
        permissions: Permissions::new([Permission::ViewNotify]),
        password_hash: None,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: t0(),
    };
    let add = entry(1, admin(), "admin.user.add", None);
    s.change_identity(&IdentityChange::CreateUser(bob.clone()), t0(), &add)
        .unwrap();
    assert_eq!(s.user_by_id("u-bob").unwrap(), Some(bob.clone()));

    bob.disabled = true;
    let disable = entry(2, admin(), "admin.user.disable", None);
    s.change_identity(
        &IdentityChange::UpdateUser(bob.clone()),
        t0() + Duration::minutes(2),
        &disable,
    )
    .unwrap();
    assert_eq!(s.user_by_id("u-bob").unwrap(), Some(bob.clone()));

    let token = NewApiToken {
        id: "t-bob".into(),
        user_id: "u-bob".into(),
        token_hash: "hash-bob".into(),
        label: "epr".into(),
        created_at: t0(),
        expires_at: None,
    };
    let issue = entry(3, admin(), "admin.token.issue", None);
    s.change_identity(&IdentityChange::CreateToken(token.clone()), t0(), &issue)
        .unwrap();
    assert_eq!(
        s.user_by_token_hash("hash-bob", t0()).unwrap(),
        Some(bob.clone())
    );
    let mut expected = vec![
        (
            1,
            entry(0, actor("alice", Some("RXX01")), "auth.login", None),
        ),
        (2, add),
        (3, disable),
        (4, issue),
    ];
    assert_eq!(all_audit(), expected);
    intact(4);

    // Changes that fail: nothing is written, and no entry is appended.
    let users_before = s.list_users().unwrap();
    let refused = entry(9, admin(), "admin.refused", None);
    let mut clash = bob.clone();
    clash.id = "u-clash".into();
    clash.disabled = false;
    clash.display_name = "Impostor".into();
    let mut ghost = bob.clone();
    ghost.id = "u-ghost".into();
    ghost.username = "ghost.user".into();
    let orphan = NewApiToken {
        id: "t-orphan".into(),
        user_id: "u-missing".into(),
        token_hash: "hash-orphan".into(),
        ..token.clone()
    };
    let reused_id = NewApiToken {
        token_hash: "hash-other".into(),
        ..token.clone()
    };
    for (what, change) in [
        ("an existing username", IdentityChange::CreateUser(clash)),
        ("an existing user id", {
            let mut again = bob.clone();
            again.username = "another.name".into();
            IdentityChange::CreateUser(again)
        }),
        ("an unknown user", IdentityChange::UpdateUser(ghost)),
        (
            "a token of an unknown user",
            IdentityChange::CreateToken(orphan),
        ),
        (
            "an existing token id",
            IdentityChange::CreateToken(reused_id),
        ),
    ] {
        let r = s.change_identity(&change, t0() + Duration::minutes(9), &refused);
        assert!(matches!(r, Err(StoreError::Constraint(_))), "{what}: {r:?}");
        assert_eq!(all_audit(), expected, "{what}: no audit entry");
        intact(4);
    }
    assert_eq!(s.list_users().unwrap(), users_before);
    assert_eq!(s.user_by_username("another.name").unwrap(), None);
    assert_eq!(s.user_by_token_hash("hash-orphan", t0()).unwrap(), None);
    assert_eq!(s.user_by_token_hash("hash-other", t0()).unwrap(), None);

    // The chain head did not move: the next change follows the last entry that committed, and
    // the store still works on the connection that saw the failures.
    bob.disabled = false;
    let enable = entry(10, admin(), "admin.user.enable", None);
    s.change_identity(&IdentityChange::UpdateUser(bob.clone()), t0(), &enable)
        .unwrap();
    assert_eq!(s.user_by_id("u-bob").unwrap(), Some(bob.clone()));
    expected.push((5, enable));
    assert_eq!(all_audit(), expected);
    intact(5);

    // The other way round: when the audit entry cannot be appended, the change is not written.
    ctx.raw(
        "CREATE TRIGGER audit_log_refuse_test BEFORE INSERT ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
        "CREATE FUNCTION audit_log_refuse_test() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
         CREATE TRIGGER audit_log_refuse_test BEFORE INSERT ON audit_log
           FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_test();",
    )
    .unwrap();
    let mut carol = bob.clone();
    carol.id = "u-carol".into();
    carol.username = "carol.system".into();
    let mut disabled_bob = bob.clone();
    disabled_bob.disabled = true;
    let carol_token = NewApiToken {
        id: "t-carol".into(),
        token_hash: "hash-carol".into(),
        ..token
    };
    for (what, change) in [
        ("create", IdentityChange::CreateUser(carol)),
        ("update", IdentityChange::UpdateUser(disabled_bob)),
        ("token", IdentityChange::CreateToken(carol_token)),
    ] {
        let r = s.change_identity(&change, t0(), &refused);
        assert!(r.is_err(), "{what}: the audit append must fail");
    }
    ctx.raw(
        "DROP TRIGGER audit_log_refuse_test;",
        "DROP TRIGGER audit_log_refuse_test ON audit_log; DROP FUNCTION audit_log_refuse_test();",
    )
    .unwrap();
    assert_eq!(s.user_by_username("carol.system").unwrap(), None);
    assert_eq!(s.user_by_id("u-bob").unwrap(), Some(bob), "not disabled");
    assert_eq!(s.user_by_token_hash("hash-carol", t0()).unwrap(), None);
    assert_eq!(all_audit(), expected);
    intact(5);
}

fn audit_append_search_and_verify(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let ns = nhs_numbers(0, 2);
    let entries = vec![
        entry(0, actor("alice", Some("RXX01")), "auth.login", None),
        entry(
            1,
            actor("alice", Some("RXX01")),
            "lookup.unscheduled",
            Some(ns[0]),
        ),
        entry(2, actor("bob", Some("RYY02")), "lookup.silent", Some(ns[1])),
        AuditEntry {
            outcome: AuditOutcome::Denied,
            trace_id: None,
            detail: None,
            ..entry(3, AuditActor::anonymous(), "auth.failed", None)
        },
        entry(4, actor("admin", None), "admin.user.add", None),
    ];
    for e in &entries {
        s.append_audit(e).unwrap();
    }
    // Inside an upload and a lookup transaction too.
    let up = new_upload(LA_A, "audited", "sha-audited");
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    let upload_entry = entry(5, actor("op", Some(LA_A)), "upload.apply", None);
    tx.append_audit(&upload_entry).unwrap();
    tx.finish(&completed(&up, 0), None).unwrap();
    let mut tx = s.begin_lookups().unwrap();
    let lookup_entry = entry(
        6,
        actor("alice", Some("RXX01")),
        "lookup.unscheduled",
        Some(ns[0]),
    );
    tx.append_audit(&lookup_entry).unwrap();
    tx.commit().unwrap();

    let all = s
        .audit_search(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [7, 6, 5, 4, 3, 2, 1]
    );
    let mut expected = entries.clone();
    expected.push(upload_entry);
    expected.push(lookup_entry);
    assert_eq!(
        all.iter()
            .rev()
            .map(|r| r.entry.clone())
            .collect::<Vec<_>>(),
        expected,
        "entries read back exactly"
    );
    assert!(all.iter().all(|r| r.hash.len() == 64));

    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut query = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut query);
        s.audit_search(&query)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(q(&|x| x.subject_nhs = Some(ns[0])), [7, 2]);
    assert_eq!(q(&|x| x.actor_id = Some("alice".into())), [7, 2, 1]);
    assert_eq!(q(&|x| x.organisation = Some("RYY02".into())), [3]);
    assert_eq!(q(&|x| x.action_prefix = Some("lookup.".into())), [7, 3, 2]);
    assert_eq!(q(&|x| x.action_prefix = Some("auth".into())), [4, 1]);
    assert_eq!(
        q(&|x| x.action_prefix = Some("%".into())),
        Vec::<u64>::new()
    );
    assert_eq!(
        q(&|x| x.from = Some(t0() + Duration::minutes(2))),
        [7, 6, 5, 4, 3]
    );
    assert_eq!(q(&|x| x.to = Some(t0() + Duration::minutes(1))), [2, 1]);
    assert_eq!(
        q(&|x| {
            x.from = Some(t0() + Duration::minutes(1));
            x.to = Some(t0() + Duration::minutes(3));
        }),
        [4, 3, 2]
    );
    assert_eq!(q(&|x| x.before_seq = Some(4)), [3, 2, 1]);
    assert_eq!(
        q(&|x| {
            x.before_seq = Some(6);
            x.limit = 2;
        }),
        [5, 4]
    );

    match s.audit_verify().unwrap() {
        AuditVerification::Intact {
            entries,
            head_seq,
            head_hash,
        } => {
            assert_eq!((entries, head_seq), (7, 7));
            assert_eq!(head_hash, all[0].hash);
        }
        broken => panic!("{broken:?}"),
    }
}

fn audit_verify_detects_an_edited_row(ctx: &Ctx) {
    let s = ctx.store();
    for i in 0..3 {
        s.append_audit(&entry(
            i,
            actor("alice", Some("RXX01")),
            "lookup.silent",
            Some(nhs(0)),
        ))
        .unwrap();
    }
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { entries: 3, .. }
    ));

    // The log refuses edits and deletions.
    let edit = "UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 2";
    assert!(ctx.raw(edit, edit).is_err(), "update must be refused");
    let delete = "DELETE FROM audit_log WHERE seq = 3";
    assert!(ctx.raw(delete, delete).is_err(), "delete must be refused");
    if ctx.is_postgres() {
        assert!(
            ctx.raw("", "TRUNCATE audit_log").is_err(),
            "truncate must be refused"
        );
    }
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { entries: 3, .. }
    ));

    // With the guard removed behind the store's back, verification finds the edit.
    ctx.raw(
        &format!("DROP TRIGGER audit_log_no_update; {edit}"),
        &format!("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update; {edit}"),
    )
    .unwrap();
    match s.audit_verify().unwrap() {
        AuditVerification::Broken { seq, problem } => {
            assert_eq!(seq, 2);
            assert!(problem.contains("edited"), "{problem}");
        }
        intact => panic!("edit not detected: {intact:?}"),
    }
}

/// Two servers receive the same file for one LA at the same moment: exactly one applies it, the
/// other is recorded as its duplicate.
fn concurrent_uploads_of_one_file_apply_once(ctx: &Ctx) {
    seed_directory(ctx.store());
    let a = la(LA_A);
    let servers = [ctx.reopen(), ctx.reopen()];
    for round in 0..3 {
        let file_id = format!("same-file-{round}");
        let n = nhs(round);
        let barrier = Barrier::new(2);
        let summaries: Vec<UploadSummary> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .map(|store| {
                    let (file_id, barrier, a) = (&file_id, &barrier, &a);
                    scope.spawn(move || {
                        let up = new_upload(LA_A, file_id, &format!("sha-{file_id}"));
                        barrier.wait();
                        let mut tx = store.begin_upload().unwrap();
                        tx.insert_upload(&up).unwrap();
                        let dup = tx
                            .find_effective_duplicate(a, file_id, &up.content_sha256, &up.id)
                            .unwrap();
                        let s = match dup {
                            Some(original) => {
                                let mut s = summary(&up, UploadStatus::Duplicate, None);
                                s.duplicate_of = Some(original);
                                s
                            }
                            None => {
                                tx.upsert(
                                    a,
                                    &row(n, PlanType::Cpp, "2026-01-01", None),
                                    &up.id,
                                    t0(),
                                )
                                .unwrap();
                                // Hold the transaction open a while: the other must wait.
                                std::thread::sleep(std::time::Duration::from_millis(150));
                                completed(&up, 1)
                            }
                        };
                        tx.finish(&s, None).unwrap();
                        s
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let applied: Vec<_> = summaries
            .iter()
            .filter(|s| s.status == UploadStatus::Completed)
            .collect();
        let dups: Vec<_> = summaries
            .iter()
            .filter(|s| s.status == UploadStatus::Duplicate)
            .collect();
        assert_eq!((applied.len(), dups.len()), (1, 1), "{summaries:?}");
        assert_eq!(dups[0].duplicate_of.as_ref(), Some(&applied[0].id));
        for s in &summaries {
            assert_eq!(ctx.store().upload(&a, &s.id).unwrap().as_ref(), Some(s));
        }
    }
    assert_eq!(ctx.store().la_record_count(&a).unwrap(), 3);
}

fn mesh_message(local_id: &str, at: DateTime<Utc>) -> cpis_store::NewMeshMessage {
    cpis_store::NewMeshMessage {
        local_id: local_id.into(),
        recipient: "LA001OT".into(),
        workflow_id: "CPIS_ACCESS_NOTIFICATION".into(),
        subject: Some("subject".into()),
        filename: None,
        content_type: "application/json".into(),
        body: vec![0, 159, 146, 150, b'{'],
        created_at: at,
    }
}

fn mesh_outbox_queues_once_and_records_each_send(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    // Only Coventry (LA_A) has a MESH mailbox: Westminster's notifications are never pending.
    let mut tx = s.begin_lookups().unwrap();
    let (a1, a2, b1) = (
        notification(LA_A, 1),
        notification(LA_A, 2),
        notification(LA_B, 1),
    );
    for n in [&a1, &b1, &a2] {
        tx.insert_notification(n).unwrap();
    }
    tx.commit().unwrap();
    let pending = s.mesh_pending_notifications(100).unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|(n, mb)| (n.id.as_str(), mb.as_str()))
            .collect::<Vec<_>>(),
        [(a1.id.as_str(), "LA001OT"), (a2.id.as_str(), "LA001OT")]
    );
    assert_eq!(s.mesh_pending_notifications(1).unwrap().len(), 1);

    // Queue the first with its cursor; queuing it again (another worker) adds nothing, and an
    // older cursor never moves the LA's cursor back.
    let (first, _) = &pending[0];
    let m1 = mesh_message(&format!("n-{}", first.id), t0());
    assert_eq!(
        s.mesh_enqueue(std::slice::from_ref(&m1), &[(la(LA_A), first.seq)])
            .unwrap(),
        1
    );
    assert_eq!(
        s.mesh_enqueue(std::slice::from_ref(&m1), &[(la(LA_A), 0)])
            .unwrap(),
        0
    );
    let left = s.mesh_pending_notifications(100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0.id, a2.id);

    // Claim leases: a second claim before the lease ends gets nothing.
    let now = t0() + Duration::seconds(1);
    let claimed = s.mesh_claim(now, now + Duration::seconds(60), 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message, m1);
    assert!(!claimed[0].send_started);
    assert!(s
        .mesh_claim(now, now + Duration::seconds(60), 10)
        .unwrap()
        .is_empty());

    // A started send whose outcome is unknown comes back marked as such after its retry time.
    let id = claimed[0].id;
    s.mesh_send_started(id, now).unwrap();
    s.mesh_send_failed(
        id,
        "MESH unavailable",
        Some(now + Duration::seconds(5)),
        now,
    )
    .unwrap();
    assert!(s
        .mesh_claim(now, now + Duration::seconds(60), 10)
        .unwrap()
        .is_empty());
    let later = now + Duration::seconds(5);
    let again = s
        .mesh_claim(later, later + Duration::seconds(60), 10)
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].send_started);
    assert_eq!(again[0].attempts, 1);
    s.mesh_sent(id, "20261101090000_ABCDEF", later).unwrap();
    let at = later + Duration::hours(1);
    assert!(
        s.mesh_claim(at, at, 10).unwrap().is_empty(),
        "sent messages are done"
    );

    // A message given up on is dead and never claimed again.
    let m2 = mesh_message("n-dead", t0());
    s.mesh_enqueue(&[m2], &[]).unwrap();
    let c = s.mesh_claim(at, at, 10).unwrap();
    assert_eq!(c.len(), 1);
    s.mesh_send_failed(c[0].id, "rejected: 403", None, at)
        .unwrap();
    assert!(s
        .mesh_claim(at + Duration::days(1), at, 10)
        .unwrap()
        .is_empty());

    let outbox = s.mesh_outbox(10).unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].local_id, "n-dead");
    assert_eq!(outbox[0].dead_at, Some(at));
    assert_eq!(outbox[0].last_error.as_deref(), Some("rejected: 403"));
    assert_eq!(
        outbox[1].message_id.as_deref(),
        Some("20261101090000_ABCDEF")
    );
    assert_eq!(outbox[1].sent_at, Some(later));
    assert_eq!(outbox[1].attempts, 2);
    assert_eq!(outbox[1].last_error, None);
}

// ---------------------------------------------------------------------------------------------
// Data-quality statistics and the care-setting directory (web admin and LA pages, issue #7).

/// One upload of `la_code` received at `received`, with these row outcomes, finished as `status`.
fn upload_with_rows(
    s: &dyn Store,
    la_code: &str,
    received: DateTime<Utc>,
    status: UploadStatus,
    outcomes: &[(RecordOutcome, Option<DetailCode>)],
) -> NewUpload {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut up = new_upload(la_code, &format!("stats-{n}"), &format!("sha-stats-{n}"));
    up.received_at = received;
    let mut tx = s.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    let mut sum = summary(&up, status, None);
    for (i, (outcome, detail)) in outcomes.iter().enumerate() {
        tx.add_row_result(
            &up.id,
            &RowResult {
                row: i as u64 + 1,
                nhs_number: nhs(i).digits(),
                outcome: *outcome,
                detail: *detail,
                message: None,
                new_nhs_number: None,
                local_id: None,
            },
        )
        .unwrap();
        sum.counts.add(*outcome);
    }
    if status == UploadStatus::Completed {
        sum.file_outcome = Some(FileOutcome::from_counts(
            sum.counts.accepted,
            sum.counts.rejected,
        ));
    } else {
        sum.completed_at = None;
    }
    tx.finish(&sum, None).unwrap();
    up
}

fn la_upload_stats_and_care_settings_list(ctx: &Ctx) {
    use RecordOutcome::*;
    let s = ctx.store();
    seed_directory(s);
    let settings = vec![
        CareSetting {
            ods_code: la("RXX01"),
            name: "General Hospital ED".into(),
            setting_type: SettingType::EmergencyDepartment,
            phone: None,
        },
        CareSetting {
            ods_code: la("G81001"),
            name: "Surgery".into(),
            setting_type: SettingType::Gp,
            phone: None,
        },
    ];
    s.upsert_care_settings(&settings, t0()).unwrap();
    assert_eq!(
        s.care_settings().unwrap(),
        vec![settings[1].clone(), settings[0].clone()],
        "by ODS code"
    );

    let since = t0();
    let before = upload_with_rows(
        s,
        LA_A,
        since - Duration::microseconds(1),
        UploadStatus::Completed,
        &[(NotFound, None)],
    );
    let first = upload_with_rows(
        s,
        LA_A,
        since,
        UploadStatus::Completed,
        &[
            (Accepted, None),
            (Accepted, None),
            (Accepted, None),
            (NotFound, None),
            (Sensitive, None),
            (Invalid, Some(DetailCode::NhsNumberInactive)),
            (Invalid, Some(DetailCode::DuplicateRow)),
            (Superseded, None),
        ],
    );
    upload_with_rows(
        s,
        LA_A,
        since + Duration::hours(1),
        UploadStatus::Duplicate,
        &[(NotFound, None)],
    );
    upload_with_rows(
        s,
        LA_A,
        since + Duration::hours(2),
        UploadStatus::HeldForConfirmation,
        &[(Accepted, None)],
    );
    upload_with_rows(
        s,
        LA_B,
        since + Duration::hours(3),
        UploadStatus::Completed,
        &[(DobMismatch, None)],
    );
    let second = upload_with_rows(
        s,
        LA_A,
        since + Duration::days(8),
        UploadStatus::Completed,
        &[(MalformedNhsNumber, None), (DobMismatch, None)],
    );

    let stats = s.la_upload_stats(&la(LA_A), since).unwrap();
    let ids: Vec<&UploadId> = stats.iter().map(|u| &u.id).collect();
    assert_eq!(
        ids,
        vec![&first.id, &second.id],
        "completed uploads of this LA since the time, oldest first (not {:?})",
        before.id
    );
    let a = &stats[0];
    assert_eq!(a.file_id, first.meta.file_id);
    assert_eq!(a.received_at, since);
    assert_eq!(a.file_outcome, Some(FileOutcome::Partial));
    assert_eq!(a.rows, 8);
    assert_eq!(
        a.by_outcome,
        [
            (Accepted, 3),
            (NotFound, 1),
            (Sensitive, 1),
            (Superseded, 1),
            (Invalid, 2)
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(a.inactive_nhs_numbers, 1);
    assert_eq!((a.matched(), a.not_matched(), a.rejected()), (3, 3, 5));
    let b = &stats[1];
    assert_eq!(b.file_outcome, Some(FileOutcome::NothingLoaded));
    assert_eq!(
        (b.matched(), b.not_matched(), b.inactive_nhs_numbers),
        (0, 2, 0)
    );
    let total = cpis_store::MatchCounts::of(&stats);
    assert_eq!((total.matched, total.not_matched), (3, 5));
    assert_eq!(total.rate_basis_points(), Some(3750));
    assert_eq!(total.meets(9500), Some(false));

    assert_eq!(
        s.la_upload_stats(&la(LA_B), since).unwrap().len(),
        1,
        "each LA sees its own uploads"
    );
    assert!(s
        .la_upload_stats(&la(LA_A), since + Duration::days(30))
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// The LA pages' reads (records page, web inbox).

fn named(n: NhsNumber, given: &str, family: &str, local_id: &str, plan: PlanType) -> RecordRow {
    RecordRow {
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        local_id: Some(local_id.into()),
        ..row(n, plan, "2026-01-05", None)
    }
}

fn la_records_page_and_search(ctx: &Ctx) {
    use cpis_store::{RecordQuery, RecordSearch};
    let s = ctx.store();
    seed_directory(s);
    let n = nhs_numbers(500, 5);
    apply(
        s,
        LA_A,
        &[
            named(n[0], "Zara", "Adams", "COV-1", PlanType::Cpp),
            named(n[1], "amy", "brown", "COV-2", PlanType::Lac),
            named(n[2], "Ben", "Brown", "COV-3", PlanType::Cpp),
            named(n[2], "Ben", "Brown", "COV-3", PlanType::Lac),
            named(n[3], "Cara", "Clarke", "COV-4", PlanType::Cpp),
        ],
    );
    // Westminster holds n[3] too, and a child of its own called Brown.
    apply(
        s,
        LA_B,
        &[
            named(n[3], "Cara", "Clarke", "WES-9", PlanType::Cpp),
            named(n[4], "Bob", "Brown", "WES-1", PlanType::Cpp),
        ],
    );
    let q = |search: Option<RecordSearch>, offset: u64, limit: u32| RecordQuery {
        search,
        offset,
        limit,
    };
    let nhs_of =
        |rs: &[cpis_store::StoredRecord]| rs.iter().map(|r| r.nhs_number).collect::<Vec<_>>();

    // All of A's records, by family name then given name (case ignored), plans attached.
    let all = s.la_records(&la(LA_A), &q(None, 0, 10)).unwrap();
    assert_eq!(nhs_of(&all), vec![n[0], n[1], n[2], n[3]]);
    assert!(all.iter().all(|r| r.la == la(LA_A)));
    assert_eq!(all[2].plans.len(), 2, "both of Ben's plans");
    assert_eq!(
        all[3].local_id.as_deref(),
        Some("COV-4"),
        "A's own copy of the shared child"
    );

    // Pages.
    assert_eq!(
        nhs_of(&s.la_records(&la(LA_A), &q(None, 0, 2)).unwrap()),
        vec![n[0], n[1]]
    );
    assert_eq!(
        nhs_of(&s.la_records(&la(LA_A), &q(None, 2, 2)).unwrap()),
        vec![n[2], n[3]]
    );
    assert!(s.la_records(&la(LA_A), &q(None, 4, 2)).unwrap().is_empty());

    // NHS number: exact, own LA only.
    let found = s
        .la_records(&la(LA_A), &q(Some(RecordSearch::Nhs(n[2])), 0, 10))
        .unwrap();
    assert_eq!(nhs_of(&found), vec![n[2]]);
    assert!(
        s.la_records(&la(LA_A), &q(Some(RecordSearch::Nhs(n[4])), 0, 10))
            .unwrap()
            .is_empty(),
        "another LA's child is never found"
    );

    // Text: family name, given name, full name, local id; any case; never another LA's.
    let text = |t: &str| {
        nhs_of(
            &s.la_records(&la(LA_A), &q(Some(RecordSearch::Text(t.into())), 0, 10))
                .unwrap(),
        )
    };
    assert_eq!(text("BROWN"), vec![n[1], n[2]]);
    assert_eq!(text("amy b"), vec![n[1]]);
    assert_eq!(text("cov-4"), vec![n[3]]);
    assert_eq!(text("  zar "), vec![n[0]]);
    assert!(text("WES-1").is_empty());
    assert!(text("%").is_empty(), "no wildcards");
    let b = s
        .la_records(
            &la(LA_B),
            &q(Some(RecordSearch::Text("brown".into())), 0, 10),
        )
        .unwrap();
    assert_eq!(nhs_of(&b), vec![n[4]]);
    assert_eq!(b[0].local_id.as_deref(), Some("WES-1"));
}

fn notifications_newest_first(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let mut tx = s.begin_lookups().unwrap();
    let mine: Vec<NewNotification> = (0..5).map(|i| notification(LA_A, i)).collect();
    for (i, note) in mine.iter().enumerate() {
        tx.insert_notification(note).unwrap();
        tx.insert_notification(&notification(LA_B, i as i64))
            .unwrap();
    }
    tx.commit().unwrap();
    let ids = |v: Vec<cpis_domain::Notification>| {
        v.into_iter().map(|n| (n.seq, n.id)).collect::<Vec<_>>()
    };
    let newest = ids(s.notifications_newest(&la(LA_A), None, 3).unwrap());
    assert_eq!(
        newest,
        vec![
            (5, mine[4].id.clone()),
            (4, mine[3].id.clone()),
            (3, mine[2].id.clone())
        ]
    );
    let older = ids(s.notifications_newest(&la(LA_A), Some(3), 3).unwrap());
    assert_eq!(
        older,
        vec![(2, mine[1].id.clone()), (1, mine[0].id.clone())]
    );
    assert!(s
        .notifications_newest(&la(LA_A), Some(1), 3)
        .unwrap()
        .is_empty());
    // An acknowledgement shows at once.
    let t1 = t0() + Duration::minutes(30);
    s.acknowledge(&la(LA_A), &mine[4].id, "social.worker", t1)
        .unwrap();
    let first = &s.notifications_newest(&la(LA_A), None, 1).unwrap()[0];
    assert_eq!(first.acknowledged_at, Some(t1));
    assert!(s
        .notifications_newest(&la(LA_B), None, 10)
        .unwrap()
        .iter()
        .all(|n| n.la == la(LA_B) && !mine.iter().any(|m| m.id == n.id)));
}

fn recent_uploads_newest_first_and_la_scoped(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let first = apply(s, LA_A, &[row(nhs(1), PlanType::Cpp, "2026-01-01", None)]);
    let other_la = apply(s, LA_B, &[row(nhs(2), PlanType::Cpp, "2026-01-01", None)]);
    let second = apply(s, LA_A, &[]);
    let refused = new_upload(LA_A, "bad-file", "sha-bad");
    s.record_refused_upload(&summary(
        &refused,
        UploadStatus::Completed,
        Some(FileOutcome::Malformed),
    ))
    .unwrap();

    let ids = |la_code: &str, limit: u32| -> Vec<UploadId> {
        s.recent_uploads(&la(la_code), limit)
            .unwrap()
            .into_iter()
            .map(|u| u.id)
            .collect()
    };
    assert_eq!(
        ids(LA_A, 10),
        vec![refused.id.clone(), second.id.clone(), first.id.clone()],
        "newest first, refused files included, other LAs' left out"
    );
    assert_eq!(ids(LA_A, 2), vec![refused.id.clone(), second.id.clone()]);
    assert_eq!(ids(LA_B, 10), vec![other_la.id.clone()]);
    assert!(ids("E06000001", 10).is_empty());
    // The summaries are the stored ones, counts and all.
    let oldest = &s.recent_uploads(&la(LA_A), 10).unwrap()[2];
    assert_eq!(
        Some(oldest.clone()),
        s.upload(&la(LA_A), &first.id).unwrap()
    );
    assert_eq!(oldest.counts.accepted, 1);
}

fn webhook_changes_commit_with_their_audit_entry(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let hook = cpis_store::Webhook {
        id: "hook-audited".into(),
        la: la(LA_A),
        url: "https://coventry.example/cpis".into(),
        secret: "signing-secret".into(),
        created_at: t0(),
    };
    let webhook_entries = || {
        s.audit_search(&AuditQuery {
            action_prefix: Some("admin.webhook".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .unwrap()
    };
    let added = entry(1, actor("op", None), "admin.webhook.add", None);
    s.add_webhook(&hook, &added).unwrap();
    assert_eq!(s.webhooks(&la(LA_A)).unwrap(), vec![hook.clone()]);
    assert_eq!(webhook_entries().len(), 1);
    assert_eq!(webhook_entries()[0].entry, added);

    // The same id again fails: no second webhook, no entry.
    let again = entry(2, actor("op", None), "admin.webhook.add", None);
    assert!(s.add_webhook(&hook, &again).is_err());
    assert_eq!(webhook_entries().len(), 1);

    // Removing another LA's webhook, or one that does not exist: nothing, no entry.
    let removed = entry(3, actor("op", None), "admin.webhook.remove", None);
    assert!(!s
        .remove_webhook(&la(LA_B), &hook.id, t0(), &removed)
        .unwrap());
    assert!(!s
        .remove_webhook(&la(LA_A), "no-such", t0(), &removed)
        .unwrap());
    assert_eq!(webhook_entries().len(), 1);
    assert!(s
        .remove_webhook(&la(LA_A), &hook.id, t0(), &removed)
        .unwrap());
    assert!(s.webhooks(&la(LA_A)).unwrap().is_empty());
    let entries = webhook_entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].entry, removed, "newest first");
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { .. }
    ));
}

/// A CIS2 person's SDS user id, selected role profile id and job role code are kept with the
/// access and read back in the history; a local account's access has none of them.
fn accesses_keep_the_nhs_identity(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let n = nhs(0);
    apply(s, LA_A, &[row(n, PlanType::Cpp, "2026-01-01", None)]);
    let local = access(1, n, AccessKind::Unscheduled);
    let mut cis2 = access(2, n, AccessKind::Unscheduled);
    cis2.accessor.nhs = NhsIdentity {
        sds_user_id: Some("555254242106".into()),
        role_profile_id: Some("555254243107".into()),
        role_code: Some("R8000".into()),
    };
    let mut partial = access(3, n, AccessKind::Unscheduled);
    partial.accessor.nhs.sds_user_id = Some("555254242107".into());
    let mut tx = s.begin_lookups().unwrap();
    for a in [&local, &cis2, &partial] {
        tx.insert_access(a).unwrap();
    }
    tx.commit().unwrap();
    let history = s.recent_accesses(n, 25).unwrap();
    assert_eq!(history, vec![partial.clone(), cis2.clone(), local.clone()]);
    assert_eq!(history[1].accessor.nhs.role_code.as_deref(), Some("R8000"));
    assert!(history[2].accessor.nhs.is_empty());
    // Another server on the same database reads the same.
    assert_eq!(ctx.reopen().recent_accesses(n, 25).unwrap(), history);
}

/// Application-restricted clients are registered with their system identity and audit entry in
/// one transaction; a client assertion's `jti` is accepted once (also through another server on
/// the same database) until it expires; a CIS2 session keeps the NHS identity and assurance.
fn oauth_clients_and_assertion_jtis(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let user = User {
        id: "u-client".into(),
        username: "client:coventry-case-system".into(),
        display_name: "Coventry case system".into(),
        kind: UserKind::System,
        organisation: la(LA_A),
        role: "System".into(),
        permissions: Permissions::parse("la:upload la:notifications").unwrap(),
        password_hash: None,
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: t0(),
    };
    let client = cpis_store::OAuthClient {
        client_id: "coventry-case-system".into(),
        user_id: user.id.clone(),
        keys: cpis_store::ClientKeys::Jwks(r#"{"keys":[]}"#.into()),
        allow_unattended_lookups: false,
        created_at: t0(),
    };
    let audit = entry(1, actor("operator:root", None), "admin.client.add", None);
    s.change_identity(
        &IdentityChange::RegisterClient {
            user: user.clone(),
            client: client.clone(),
        },
        t0(),
        &audit,
    )
    .unwrap();
    let (got, got_user) = s.oauth_client("coventry-case-system").unwrap().unwrap();
    assert_eq!(got, client);
    assert_eq!(got_user.username, "client:coventry-case-system");
    assert!(s.oauth_client("nobody").unwrap().is_none());
    // The same client id again: refused, and no audit entry for it.
    let again = entry(2, actor("operator:root", None), "admin.client.add", None);
    let mut other_user = user.clone();
    other_user.id = "u-client-2".into();
    other_user.username = "client:other".into();
    let url_client = cpis_store::OAuthClient {
        user_id: other_user.id.clone(),
        keys: cpis_store::ClientKeys::JwksUrl("https://keys.example/jwks.json".into()),
        allow_unattended_lookups: true,
        ..client.clone()
    };
    assert!(s
        .change_identity(
            &IdentityChange::RegisterClient {
                user: other_user.clone(),
                client: url_client.clone(),
            },
            t0(),
            &again,
        )
        .is_err());
    assert!(s.user_by_username("client:other").unwrap().is_none());
    let second = cpis_store::OAuthClient {
        client_id: "gp-system".into(),
        ..url_client
    };
    s.change_identity(
        &IdentityChange::RegisterClient {
            user: other_user,
            client: second.clone(),
        },
        t0(),
        &again,
    )
    .unwrap();
    assert_eq!(s.oauth_clients().unwrap(), vec![client.clone(), second]);
    let audited = s
        .audit_search(&AuditQuery {
            action_prefix: Some("admin.client".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(audited.len(), 2);

    // jti: once per client until it expires; another server sees the same.
    let exp = t0() + Duration::minutes(5);
    assert!(s
        .use_assertion_jti("coventry-case-system", "j1", exp, t0())
        .unwrap());
    assert!(!s
        .use_assertion_jti("coventry-case-system", "j1", exp, t0())
        .unwrap());
    assert!(!ctx
        .reopen()
        .use_assertion_jti(
            "coventry-case-system",
            "j1",
            exp,
            t0() + Duration::minutes(1)
        )
        .unwrap());
    assert!(
        s.use_assertion_jti("gp-system", "j1", exp, t0()).unwrap(),
        "per client"
    );
    // Past its expiry the record is forgotten (the assertion itself would be refused as expired).
    assert!(s
        .use_assertion_jti(
            "coventry-case-system",
            "j1",
            exp + Duration::minutes(5),
            exp + Duration::seconds(1)
        )
        .unwrap());

    // A CIS2 session keeps the person's NHS identity and the sign-in's assurance level.
    let session = Session {
        id_hash: "cis2-session".into(),
        user_id: user.id.clone(),
        csrf_token: "csrf".into(),
        created_at: t0(),
        expires_at: t0() + Duration::hours(8),
        nhs: NhsIdentity {
            sds_user_id: Some("555254242106".into()),
            role_profile_id: Some("555254243107".into()),
            role_code: Some("R8000".into()),
        },
        assurance_level: Some(3),
        contact: WorkContact::default(),
    };
    s.create_session(&session).unwrap();
    let (got, _) = s.session("cis2-session", t0()).unwrap().unwrap();
    assert_eq!((got.nhs, got.assurance_level), (session.nhs, Some(3)));
}

/// Births and adoption (migration 0017): the notices that send each birth and reminder once,
/// the babies of a mother, the UCPPs due a reminder, and numbers invalidated for adoption hidden
/// from `records_for` but kept in `records_held`.
fn births_reminders_and_adoption_invalidation(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let (m1, m2, m3) = (nhs(1), nhs(2), nhs(3));
    let (b1, b2, sibling) = (nhs(10), nhs(11), nhs(12));
    let person = |n, dob: &str, mother| Demographics {
        nhs_number: n,
        status: DemographicStatus::Active,
        date_of_birth: d(dob),
        sensitive: false,
        mother_nhs_number: mother,
    };
    s.upsert_demographics(
        &[
            person(m1, "1995-01-01", None),
            person(m2, "1995-01-01", None),
            person(m3, "1995-01-01", None),
            person(b1, "2027-01-10", Some(m1)),
            person(b2, "2027-01-12", Some(m2)),
            person(sibling, "2020-01-01", Some(m1)),
        ],
        t0(),
    )
    .unwrap();
    // UCPPs (EDD 2027-01-15): m1 at both LAs, m2 at A (which also holds a plan for m2's baby),
    // m3 at A but ended. An older sibling's plan does not count for m1's UCPP.
    apply(
        s,
        LA_A,
        &[
            row(m1, PlanType::Ucpp, "2026-06-01", None),
            row(m2, PlanType::Ucpp, "2026-06-01", None),
            row(m3, PlanType::Ucpp, "2026-06-01", Some("2026-07-01")),
            row(b2, PlanType::Cpp, "2027-01-13", None),
            row(sibling, PlanType::Cpp, "2021-01-01", None),
        ],
    );
    apply(s, LA_B, &[row(m1, PlanType::Ucpp, "2026-06-01", None)]);

    let today = d("2027-02-01");
    let mut tx = s.begin_changes().unwrap();
    assert!(tx
        .due_birth_reminders(d("2027-01-14"), today)
        .unwrap()
        .is_empty());
    let due = tx.due_birth_reminders(d("2027-01-18"), today).unwrap();
    let who: Vec<_> = due.iter().map(|r| (r.la.to_string(), r.mother)).collect();
    assert_eq!(who, [(LA_A.to_string(), m1), (LA_B.to_string(), m1)]);
    assert_eq!(
        due[0].local_id.as_deref(),
        Some(&*format!("LID-{}", m1.digits()))
    );
    assert_eq!(due[0].plan.expected_delivery(), Some(d("2027-01-15")));
    let babies: Vec<_> = tx
        .babies_of(m1)
        .unwrap()
        .into_iter()
        .map(|b| b.nhs_number)
        .collect();
    assert_eq!(babies, [sibling, b1]);
    assert!(tx.babies_of(m3).unwrap().is_empty());

    // A notice goes once; a reminded plan is no longer due.
    let edd = d("2027-01-15");
    let reminder = NotificationKind::BirthReminder;
    assert!(tx
        .mark_birth_notice(reminder, &la(LA_A), m1, edd, t0())
        .unwrap());
    assert!(!tx
        .mark_birth_notice(reminder, &la(LA_A), m1, edd, t0())
        .unwrap());
    assert!(tx
        .mark_birth_notice(NotificationKind::Birth, &la(LA_A), m1, edd, t0())
        .unwrap());
    tx.commit().unwrap();
    let mut tx = s.begin_changes().unwrap();
    assert!(!tx
        .mark_birth_notice(reminder, &la(LA_A), m1, edd, t0())
        .unwrap());
    let due = tx.due_birth_reminders(d("2027-01-18"), today).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].la, la(LA_B));

    // Invalidated for adoption: hidden from lookups, still held, never reminded.
    tx.upsert_demographics(
        &Demographics {
            status: DemographicStatus::InvalidatedAdoption,
            ..person(m1, "1995-01-01", None)
        },
        t0(),
    )
    .unwrap();
    assert!(tx.records_for(m1).unwrap().is_empty());
    assert_eq!(tx.records_held(m1).unwrap().len(), 2);
    assert!(tx
        .due_birth_reminders(d("2027-01-18"), today)
        .unwrap()
        .is_empty());
    tx.commit().unwrap();
    assert!(s.records_for(m1).unwrap().is_empty());
    assert_eq!(s.records_held(m1).unwrap().len(), 2);
    assert_eq!(s.records_for(m2).unwrap().len(), 1);
}

/// An unscheduled (or other) access `days_ago` days before `now` at organisation `org`.
fn access_at(
    now: DateTime<Utc>,
    days_ago: i64,
    n: NhsNumber,
    org: &str,
    kind: AccessKind,
) -> Access {
    let mut a = access(0, n, kind);
    a.time = now - Duration::days(days_ago);
    a.accessor.organisation = la(org);
    a.accessor.organisation_name = format!("Setting {org}");
    a
}

fn attendance_counts_unscheduled_accesses_in_their_windows(ctx: &Ctx) {
    use cpis_domain::attendance::{AttendanceCounts, Tally};
    let s = ctx.store();
    let now = t0();
    let (child, other) = (nhs(0), nhs(1));
    let counts = |seen_6_months, seen_30_days, organisations_30_days| AttendanceCounts {
        seen_6_months,
        seen_30_days,
        organisations_30_days,
    };
    assert_eq!(s.attendance(child, now).unwrap().counts, counts(0, 0, 0));

    let mut tx = s.begin_lookups().unwrap();
    for a in [
        // Outside six months.
        access_at(now, 200, child, "RXA01", AccessKind::Unscheduled),
        // Inside six months, outside 30 days.
        access_at(now, 100, child, "RXA01", AccessKind::Unscheduled),
        access_at(now, 40, child, "RXB01", AccessKind::Unscheduled),
        // Inside 30 days.
        access_at(now, 10, child, "RXA01", AccessKind::Unscheduled),
        access_at(now, 1, child, "RXB01", AccessKind::Unscheduled),
        access_at(now, 0, child, "RXB01", AccessKind::Unscheduled),
        // Not attendances: silent lookups, another child, after `now`.
        access_at(now, 5, child, "RXC01", AccessKind::Silent),
        access_at(now, 1, other, "RXC01", AccessKind::Unscheduled),
        access_at(now, -1, child, "RXC01", AccessKind::Unscheduled),
    ] {
        tx.insert_access(&a).unwrap();
    }
    tx.commit().unwrap();

    let got = s.attendance(child, now).unwrap();
    assert_eq!(got.counts, counts(5, 3, 2));
    assert_eq!(
        got.organisations_30_days,
        ["Setting RXB01", "Setting RXA01"],
        "most attendances first"
    );
    assert_eq!(s.attendance(other, now).unwrap().counts, counts(1, 1, 1));
    // The windows move with the clock and include their start: 20 days on, the access 10 days
    // before `now` is exactly 30 days old and counts, and the one after `now` is inside too.
    assert_eq!(
        s.attendance(child, now + Duration::days(20))
            .unwrap()
            .counts,
        counts(6, 4, 3)
    );
    assert_eq!(
        s.attendance(child, now + Duration::days(20) + Duration::seconds(1))
            .unwrap()
            .counts,
        counts(6, 3, 2)
    );

    // Inside a lookup's transaction its own access is among the accesses it reads and counts
    // before commit, and not after a rollback.
    let mut tx = s.begin_lookups().unwrap();
    tx.insert_access(&access_at(now, 0, child, "RXC01", AccessKind::Unscheduled))
        .unwrap();
    let mut tally = Tally::default();
    for a in &tx.unscheduled_after(child, 0).unwrap() {
        tally.add(a, now);
    }
    assert_eq!(tally.attendance().counts, counts(6, 4, 3));
    drop(tx);
    assert_eq!(s.attendance(child, now).unwrap().counts, counts(5, 3, 2));
}

/// Issue #16: a lookup reads its view (records, history, attendance) before its write
/// transaction, and in it only the accesses after the view's newest: whatever commits in between,
/// each access is in the history and the attendance exactly once.
fn a_lookup_view_and_the_accesses_after_it_count_each_access_once(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let child = nhs(0);
    let now = t0() + Duration::hours(1);
    assert_eq!(
        s.lookup_view(child, 25, now).unwrap().through,
        0,
        "no records"
    );
    apply(s, LA_A, &[row(child, PlanType::Cpp, "2026-01-01", None)]);
    let commit = |a: &Access| {
        let mut tx = s.begin_lookups().unwrap();
        tx.insert_access(a).unwrap();
        tx.commit().unwrap();
        // In the tables, as the lookup service's log thread leaves a logged lookup moments
        // later (SQLite); a view inside a logged group reads the tables, and the group's
        // accesses after it add the log's (`unscheduled_after`, below).
        s.drain_lookup_spool().unwrap();
    };
    let (older, before) = (
        access(1, child, AccessKind::Unscheduled),
        access(2, child, AccessKind::Unscheduled),
    );
    commit(&older);
    commit(&access(3, child, AccessKind::Silent));
    commit(&before);
    // A history shorter than the attendance: both accesses up to the view's newest count.
    let view = s.lookup_view(child, 1, now).unwrap();
    assert_eq!(view.records.len(), 1);
    assert_eq!(view.local_authorities.len(), 1);
    assert_eq!(view.history, vec![before.clone()]);
    assert_eq!(view.attendance.clone().attendance().counts.seen_6_months, 2);
    // One committed between the view and the write transaction, then the lookup's own.
    let between = access(4, child, AccessKind::Unscheduled);
    commit(&between);
    let own = access(5, child, AccessKind::Unscheduled);
    let mut tx = s.begin_lookups().unwrap();
    // The same view read in the group's transaction (where SQLite's lookups read it) holds the
    // access committed since.
    let inside = tx.view(child, 1, now).unwrap();
    assert_eq!(inside.records.len(), 1);
    assert_eq!(inside.history, vec![between.clone()]);
    assert!(inside.through > view.through);
    assert_eq!(inside.attendance.attendance().counts.seen_6_months, 3);
    tx.insert_access(&own).unwrap();
    assert_eq!(
        tx.unscheduled_after(child, inside.through).unwrap(),
        vec![own.clone()]
    );
    let since = tx.unscheduled_after(child, view.through).unwrap();
    assert_eq!(since, vec![between.clone(), own.clone()]);
    let (history, attendance) = view.complete(since, &own.id, 2, now);
    assert_eq!(
        history,
        vec![between.clone(), before.clone()],
        "newest first, not its own"
    );
    assert_eq!(attendance.counts.seen_6_months, 4, "its own included");
    tx.commit().unwrap();
    let full = s.lookup_view(child, 25, now).unwrap();
    assert_eq!(full.history, vec![own, between, before, older]);
    assert_eq!(full.attendance.clone().attendance().counts.seen_6_months, 4);
    // A lookup that shows no history reads none, and still reads the view up to the newest.
    let flag = s.lookup_view(child, 0, now).unwrap();
    assert!(flag.history.is_empty());
    assert_eq!(flag.through, full.through);
    assert_eq!(flag.attendance, full.attendance);
    let mut tx = s.begin_lookups().unwrap();
    let inside = tx.view(child, 0, now).unwrap();
    assert_eq!((inside.through, inside.history.len()), (full.through, 0));
    drop(tx);
    let together = s.lookup_views(&[child, nhs(1)], 0, now).unwrap();
    assert_eq!(together[0].through, full.through);
    assert!(together[0].history.is_empty());
}

/// The committed accesses a group reads ahead for its lookups (PostgreSQL: one statement) are
/// what each lookup would read alone, the group's own accesses added after them, and a child
/// asked with two different points gets each its own.
fn accesses_read_ahead_for_a_group_are_those_read_one_by_one(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let now = t0() + Duration::hours(1);
    let (n, m) = (nhs(0), nhs(1));
    apply(
        s,
        LA_A,
        &[
            row(n, PlanType::Cpp, "2026-01-01", None),
            row(m, PlanType::Lac, "2026-01-01", None),
        ],
    );
    let commit = |a: &Access| {
        let mut tx = s.begin_lookups().unwrap();
        tx.insert_access(a).unwrap();
        tx.commit().unwrap();
    };
    let a: Vec<Access> = (1..=3)
        .map(|i| access(i, n, AccessKind::Unscheduled))
        .collect();
    commit(&a[0]);
    commit(&a[1]);
    let view = s.lookup_view(n, 25, now).unwrap();
    commit(&a[2]);
    commit(&access(4, n, AccessKind::Silent));
    let b = access(5, m, AccessKind::Unscheduled);
    commit(&b);

    let mut tx = s.begin_lookups().unwrap();
    tx.read_ahead(&[(n, view.through), (m, 0), (n, 0)]).unwrap();
    let own = access(6, n, AccessKind::Unscheduled);
    tx.insert_access(&own).unwrap();
    assert_eq!(
        tx.unscheduled_after(n, view.through).unwrap(),
        vec![a[2].clone(), own.clone()]
    );
    assert_eq!(
        tx.unscheduled_after(n, 0).unwrap(),
        vec![a[0].clone(), a[1].clone(), a[2].clone(), own.clone()]
    );
    assert_eq!(tx.unscheduled_after(m, 0).unwrap(), vec![b.clone()]);
    // Not read ahead: read as it comes.
    assert_eq!(tx.unscheduled_after(nhs(2), 0).unwrap(), vec![]);
    tx.commit().unwrap();
}

/// Views read together (what a reader reads for the lookups waiting at once) are the views read
/// one by one, child for child and in the order asked, a child asked twice included: records of
/// two LAs with their directory entries, a history longer than the limit, attendance at two
/// settings, a child without records, one with records but no accesses, one invalidated for
/// adoption (no records shown).
fn lookup_views_read_together_are_the_views_read_one_by_one(ctx: &Ctx) {
    let s = ctx.store();
    seed_directory(s);
    let now = t0() + Duration::hours(1);
    let (both, quiet, none, adopted) = (nhs(0), nhs(1), nhs(2), nhs(3));
    apply(
        s,
        LA_A,
        &[
            row(both, PlanType::Cpp, "2026-01-01", None),
            row(quiet, PlanType::Lac, "2026-01-01", None),
            row(adopted, PlanType::Cpp, "2026-01-01", None),
        ],
    );
    apply(s, LA_B, &[row(both, PlanType::Lac, "2026-01-01", None)]);
    s.upsert_demographics(
        &[Demographics {
            nhs_number: adopted,
            status: DemographicStatus::InvalidatedAdoption,
            date_of_birth: d("2015-01-01"),
            sensitive: false,
            mother_nhs_number: None,
        }],
        t0(),
    )
    .unwrap();
    let mut tx = s.begin_lookups().unwrap();
    for (days, org) in [(100, "RXA01"), (20, "RXA01"), (3, "RXB02"), (1, "RXB02")] {
        tx.insert_access(&access_at(now, days, both, org, AccessKind::Unscheduled))
            .unwrap();
    }
    tx.insert_access(&access_at(now, 2, both, "RXA01", AccessKind::Silent))
        .unwrap();
    tx.insert_access(&access_at(now, 2, none, "RXA01", AccessKind::Miss))
        .unwrap();
    tx.insert_access(&access_at(
        now,
        2,
        adopted,
        "RXA01",
        AccessKind::Unscheduled,
    ))
    .unwrap();
    tx.commit().unwrap();

    let asked = [both, none, quiet, both, adopted];
    let together = s.lookup_views(&asked, 3, now).unwrap();
    assert_eq!(together.len(), asked.len());
    for (child, view) in asked.iter().zip(&together) {
        let alone = s.lookup_view(*child, 3, now).unwrap();
        assert_eq!(format!("{view:?}"), format!("{alone:?}"), "child {child}");
    }
    let first = &together[0];
    assert_eq!(
        (
            first.records.len(),
            first.local_authorities.len(),
            first.history.len()
        ),
        (2, 2, 3)
    );
    assert!(first.through > 0);
    let counts = first.attendance.clone().attendance().counts;
    assert_eq!((counts.seen_6_months, counts.seen_30_days), (4, 3));
    assert_eq!(together[2].records.len(), 1);
    assert!(together[2].history.is_empty());
    assert!(together[1].records.is_empty() && together[4].records.is_empty());
    assert!(s.lookup_views(&[], 3, now).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The LA work queue (docs/WORKFLOW.md).

/// An access notification about `nhs` seen at `setting`, `i` minutes after t0.
fn seen(la_code: &str, i: i64, nhs: &str, setting: &str, pattern: bool) -> NewNotification {
    let pattern = if pattern {
        r#","pattern":"frequent-attendance""#
    } else {
        ""
    };
    NewNotification {
        payload: format!(
            r#"{{"child":{{"nhs_number":"{nhs}"}},"access":{{"organisation":{{"ods_code":"{setting}"}}}}{pattern}}}"#
        ),
        ..notification(la_code, i)
    }
}

fn insert_all(s: &dyn Store, items: &[NewNotification]) {
    let mut tx = s.begin_lookups().unwrap();
    for n in items {
        tx.insert_notification(n).unwrap();
    }
    tx.commit().unwrap();
}

fn query_ids(s: &dyn Store, filter: NotificationFilter, order: NotificationOrder) -> Vec<String> {
    s.notification_query(
        &la(LA_A),
        &NotificationQuery {
            filter,
            order,
            limit: 100,
        },
    )
    .unwrap()
    .into_iter()
    .map(|n| n.id)
    .collect()
}

/// The first acknowledgement's who, when, outcome and note are stored and read back; a later
/// one (another outcome) changes nothing.
fn acknowledgement_keeps_who_outcome_and_note_of_the_first(ctx: &Ctx) {
    let s = ctx.store();
    let n = notification(LA_A, 1);
    insert_all(s, std::slice::from_ref(&n));
    let sw = actor("sw-1", Some(LA_A));
    let audit = entry(5, sw.clone(), "notification.ack", None);
    let t1 = t0() + Duration::minutes(5);
    let first = Acknowledgement {
        by: "sw-1".into(),
        by_name: "Sam Worker".into(),
        at: t1,
        details: AckDetails::parse(Some("referred-to-mash"), Some("Rang MASH, café")).unwrap(),
    };
    let later = Acknowledgement {
        by: "sw-2".into(),
        by_name: "Other".into(),
        at: t1 + Duration::minutes(1),
        details: AckDetails::parse(Some("known-no-action"), None).unwrap(),
    };
    assert_eq!(
        s.acknowledge_audited(&la(LA_A), &n.id, &first, &audit, &audit)
            .unwrap(),
        Ack::Acknowledged(t1)
    );
    assert_eq!(
        s.acknowledge_audited(&la(LA_A), &n.id, &later, &audit, &audit)
            .unwrap(),
        Ack::AlreadyAcknowledged(t1)
    );
    let stored = &s.notifications(&la(LA_A), 0, 10).unwrap()[0];
    assert_eq!(stored.acknowledged_at, Some(t1));
    assert_eq!(stored.acknowledged_by.as_deref(), Some("sw-1"));
    assert_eq!(stored.acknowledged_by_name.as_deref(), Some("Sam Worker"));
    assert_eq!(stored.outcome, Some(AckOutcome::ReferredToMash));
    assert_eq!(stored.note.as_deref(), Some("Rang MASH, café"));
}

/// Assignment is the LA's own: another LA's id changes nothing and is audited as refused.
fn assignment_is_la_scoped_and_audited(ctx: &Ctx) {
    let s = ctx.store();
    let n = notification(LA_A, 1);
    insert_all(s, std::slice::from_ref(&n));
    let sw = actor("sw-1", Some(LA_A));
    let done = AuditEntry {
        detail: Some("assigned".into()),
        ..entry(5, sw.clone(), "notification.assign", None)
    };
    let refused = AuditEntry {
        outcome: AuditOutcome::Denied,
        detail: Some("refused".into()),
        ..entry(5, sw.clone(), "notification.assign", None)
    };
    let to = |name: &str, user: Option<&str>| Assignment {
        to: Assignee::parse(name).unwrap(),
        user: user.map(Into::into),
        at: t0() + Duration::minutes(5),
    };
    assert!(!s
        .assign_audited(&la(LA_B), &n.id, &to("Intruders", None), &done, &refused)
        .unwrap());
    assert_eq!(
        s.notifications(&la(LA_A), 0, 10).unwrap()[0].assigned_to,
        None
    );
    assert!(s
        .assign_audited(
            &la(LA_A),
            &n.id,
            &to("Sam Worker", Some("sw-1")),
            &done,
            &refused
        )
        .unwrap());
    assert!(s
        .assign_audited(&la(LA_A), &n.id, &to("MASH team", None), &done, &refused)
        .unwrap());
    let stored = &s.notifications(&la(LA_A), 0, 10).unwrap()[0];
    assert_eq!(stored.assigned_to.as_deref(), Some("MASH team"));
    assert_eq!(stored.assigned_user, None);
    let trail: Vec<_> = s
        .audit_search(&AuditQuery {
            action_prefix: Some("notification.assign".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.entry.outcome)
        .collect();
    assert_eq!(
        trail,
        vec![
            AuditOutcome::Success,
            AuditOutcome::Success,
            AuditOutcome::Denied
        ]
    );
}

/// Filters (each alone and with the cursor), the work-queue order and its paging.
fn work_queue_filters_order_and_pages(ctx: &Ctx) {
    let s = ctx.store();
    let (c1, c2) = ("9000000009", "9000000017");
    let old = seen(LA_A, 0, c1, "RX1", false);
    let frequent = seen(LA_A, 60 * 30, c2, "RX2", true);
    let newer = seen(LA_A, 60 * 31, c1, "RX2", false);
    let report = NewNotification {
        kind: NotificationKind::UploadReport,
        ..notification(LA_A, 60 * 32)
    };
    let old_report = NewNotification {
        kind: NotificationKind::UploadReport,
        ..notification(LA_A, 1)
    };
    let other_la = seen(LA_B, 60 * 33, c1, "RX1", false);
    insert_all(
        s,
        &[
            old.clone(),
            old_report.clone(),
            frequent.clone(),
            newer.clone(),
            report.clone(),
            other_la,
        ],
    );
    let ids = |v: &[&NewNotification]| v.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
    let all = NotificationFilter::default();
    let after0 = NotificationOrder::After(0);
    assert_eq!(
        query_ids(s, all.clone(), after0.clone()),
        ids(&[&old, &old_report, &frequent, &newer, &report])
    );
    let f = |g: fn(&mut NotificationFilter)| {
        let mut f = NotificationFilter::default();
        g(&mut f);
        f
    };
    assert_eq!(
        query_ids(
            s,
            f(|f| f.nhs_number = Some("9000000009".into())),
            after0.clone()
        ),
        ids(&[&old, &newer])
    );
    assert_eq!(
        query_ids(s, f(|f| f.setting = Some("RX2".into())), after0.clone()),
        ids(&[&frequent, &newer])
    );
    assert_eq!(
        query_ids(
            s,
            f(|f| f.kind = Some(NotificationKind::UploadReport)),
            after0.clone()
        ),
        ids(&[&old_report, &report])
    );
    let (from, to) = (
        t0() + Duration::minutes(60),
        t0() + Duration::minutes(60 * 31),
    );
    let window = NotificationFilter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    assert_eq!(query_ids(s, window, after0.clone()), ids(&[&frequent]));
    // The cursor still applies with filters: after the first access of child 1.
    let stored = s.notifications(&la(LA_A), 0, 10).unwrap();
    assert_eq!(
        query_ids(
            s,
            f(|f| f.nhs_number = Some("9000000009".into())),
            NotificationOrder::After(stored[0].seq)
        ),
        ids(&[&newer])
    );

    // Acknowledged and assigned.
    let sw = actor("sw-1", Some(LA_A));
    let audit = entry(5, sw, "notification.ack", None);
    let ack = receipt("sw-1", t0() + Duration::minutes(60 * 40));
    s.acknowledge_audited(&la(LA_A), &newer.id, &ack, &audit, &audit)
        .unwrap();
    let mine = Assignment {
        to: Assignee::parse("Sam").unwrap(),
        user: Some("sw-1".into()),
        at: t0(),
    };
    s.assign_audited(&la(LA_A), &frequent.id, &mine, &audit, &audit)
        .unwrap();
    assert_eq!(
        query_ids(s, f(|f| f.unacknowledged = true), after0.clone()),
        ids(&[&old, &old_report, &frequent, &report])
    );
    assert_eq!(
        query_ids(
            s,
            f(|f| f.assigned_user = Some("sw-1".into())),
            after0.clone()
        ),
        ids(&[&frequent])
    );

    // Work-queue order at t0 + 25 h with a 24 h deadline: the overdue access first (the
    // upload report of the same age is never overdue), then the frequent-attendance item,
    // then newest first.
    let queue = |offset| NotificationOrder::Queue {
        overdue_before: t0() + Duration::hours(1),
        offset,
    };
    assert_eq!(
        query_ids(s, all.clone(), queue(0)),
        ids(&[&old, &frequent, &report, &newer, &old_report])
    );
    let page = s
        .notification_query(
            &la(LA_A),
            &NotificationQuery {
                filter: all,
                order: queue(2),
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(
        page.into_iter().map(|n| n.id).collect::<Vec<_>>(),
        ids(&[&report, &newer])
    );
}

/// Overdue notifications are escalated once: several servers escalating the same ones at once
/// write exactly one escalation notification and one audit entry each; acknowledged and
/// non-actionable ones never.
/// Escalating a work item's first notification marks its repeat lookups (same LA, child and
/// setting, before `repeats_until`) escalated with it, and nothing else: another setting, a
/// lookup after the window and an acknowledged repeat are left as they were.
fn an_item_of_repeat_lookups_raises_one_escalation(ctx: &Ctx) {
    let s = ctx.store();
    let first = seen(LA_A, 0, "9000000009", "RX1", false);
    let repeats = [
        seen(LA_A, 10, "9000000009", "RX1", false),
        seen(LA_A, 20, "9000000009", "RX1", false),
    ];
    let acked_repeat = seen(LA_A, 30, "9000000009", "RX1", false);
    let elsewhere = seen(LA_A, 5, "9000000009", "RX2", false);
    let other_child = seen(LA_A, 6, "9000000017", "RX1", false);
    let later = seen(LA_A, 300, "9000000009", "RX1", false);
    let mut all = vec![first.clone()];
    all.extend(repeats.iter().cloned());
    all.extend([
        acked_repeat.clone(),
        elsewhere.clone(),
        other_child.clone(),
        later.clone(),
    ]);
    insert_all(s, &all);
    let audit = entry(5, actor("sw-1", Some(LA_A)), "notification.ack", None);
    s.acknowledge_audited(
        &la(LA_A),
        &acked_repeat.id,
        &receipt("sw-1", t0()),
        &audit,
        &audit,
    )
    .unwrap();
    let esc = NewNotification {
        kind: NotificationKind::Escalation,
        ..notification(LA_A, 60 * 25)
    };
    let a = entry(
        60 * 25,
        actor("system", None),
        "notification.escalate",
        None,
    );
    assert!(s
        .escalate(
            &first.id,
            first.created_at + Duration::minutes(240),
            &esc,
            &a
        )
        .unwrap());
    let left: Vec<_> = s
        .overdue_unescalated(t0() + Duration::hours(30), 100)
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, [elsewhere.id, other_child.id, later.id]);
    // A repeat already marked is not escalated again on its own.
    let again = NewNotification {
        kind: NotificationKind::Escalation,
        ..notification(LA_A, 60 * 26)
    };
    assert!(!s
        .escalate(&repeats[0].id, repeats[0].created_at, &again, &a)
        .unwrap());
}

fn escalation_is_written_once_under_concurrency(ctx: &Ctx) {
    let s = ctx.store();
    let due: Vec<_> = (0..4)
        .map(|i| seen(LA_A, i, "9000000009", "RX1", false))
        .collect();
    let acked = seen(LA_A, 5, "9000000017", "RX1", false);
    let report = NewNotification {
        kind: NotificationKind::UploadReport,
        ..notification(LA_A, 6)
    };
    let fresh = seen(LA_A, 60 * 30, "9000000009", "RX1", false);
    let mut all = due.clone();
    all.extend([acked.clone(), report, fresh]);
    insert_all(s, &all);
    let sw = actor("sw-1", Some(LA_A));
    let audit = entry(5, sw, "notification.ack", None);
    s.acknowledge_audited(&la(LA_A), &acked.id, &receipt("sw-1", t0()), &audit, &audit)
        .unwrap();
    let cutoff = t0() + Duration::hours(1);
    let overdue = s.overdue_unescalated(cutoff, 100).unwrap();
    assert_eq!(
        overdue.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        due.iter().map(|n| n.id.clone()).collect::<Vec<_>>()
    );
    let system = actor("system", None);
    let escalated = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let overdue = overdue.clone();
                let system = system.clone();
                scope.spawn(move || {
                    overdue
                        .iter()
                        .filter(|n| {
                            let esc = NewNotification {
                                kind: NotificationKind::Escalation,
                                payload: format!(r#"{{"overdue":"{}"}}"#, n.id),
                                ..notification(LA_A, 60 * 25)
                            };
                            let a = AuditEntry {
                                detail: Some(format!("escalated {}", n.id)),
                                ..entry(60 * 25, system.clone(), "notification.escalate", None)
                            };
                            s.escalate(&n.id, n.created_at, &esc, &a).unwrap()
                        })
                        .count()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(
        escalated,
        due.len(),
        "each overdue notification escalated once"
    );
    let escalations = query_ids(
        s,
        NotificationFilter {
            kind: Some(NotificationKind::Escalation),
            ..Default::default()
        },
        NotificationOrder::After(0),
    );
    assert_eq!(escalations.len(), due.len());
    assert!(s.overdue_unescalated(cutoff, 100).unwrap().is_empty());
    let audited = s
        .audit_search(&AuditQuery {
            action_prefix: Some("notification.escalate".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(audited.len(), due.len());
    // An acknowledged notification is never escalated, even if asked.
    let esc = NewNotification {
        kind: NotificationKind::Escalation,
        ..notification(LA_A, 60 * 25)
    };
    assert!(!s
        .escalate(
            &acked.id,
            acked.created_at,
            &esc,
            &entry(1, system, "notification.escalate", None)
        )
        .unwrap());
    assert!(matches!(
        s.audit_verify().unwrap(),
        AuditVerification::Intact { .. }
    ));
}

/// Issue #16, target 3: a group of lookups made while an upload's transaction is open does not
/// wait for it (on SQLite it goes to the lookup spool, reading a snapshot; PostgreSQL writers do
/// not wait), a later group sees the earlier one's access, and once the upload commits and the
/// spool is drained each access, notification and audit entry is in the database exactly once,
/// whichever store drains it and however often.
fn lookups_do_not_wait_for_an_upload_and_land_exactly_once(ctx: &Ctx) {
    use std::sync::mpsc::channel;
    let s = ctx.store();
    seed_directory(s);
    let (child, other) = (nhs(0), nhs(1));
    apply(s, LA_A, &[row(child, PlanType::Cpp, "2026-01-01", None)]);
    let audit_before = match s.audit_verify().unwrap() {
        AuditVerification::Intact { entries, .. } => entries,
        broken => panic!("{broken:?}"),
    };
    let now = t0() + Duration::minutes(10);
    let (first, second) = (
        access(1, child, AccessKind::Unscheduled),
        access(2, child, AccessKind::Unscheduled),
    );
    let note = notification(LA_A, 1);
    let spool_before = cpis_store::sqlite::lookup_spool_entries();
    let (holding_tx, holding) = channel();
    let (release_tx, release) = channel::<()>();
    std::thread::scope(|scope| {
        let upload = scope.spawn(move || {
            let up = new_upload(LA_A, "held-open", "held-open-sha");
            let mut tx = s.begin_upload().unwrap();
            tx.insert_upload(&up).unwrap();
            tx.add_row_result(&up.id, &accepted_row(1, other)).unwrap();
            tx.upsert(
                &la(LA_A),
                &row(other, PlanType::Lac, "2026-02-01", None),
                &up.id,
                t0(),
            )
            .unwrap();
            holding_tx.send(()).unwrap();
            release.recv().unwrap();
            tx.finish(&completed(&up, 1), None).unwrap();
        });
        holding.recv().unwrap();
        for (i, access) in [&first, &second].into_iter().enumerate() {
            let (done_tx, done) = channel();
            let note = &note;
            scope.spawn(move || {
                // As the lookup service does: the view on a reader, then the accesses after it
                // in the group.
                let view = s.lookup_view(child, 10, now).unwrap();
                let records = view.records.clone();
                let mut tx = s.begin_lookups().unwrap();
                tx.insert_access(access).unwrap();
                let since = tx.unscheduled_after(child, view.through).unwrap();
                let (earlier, attendance) = view.complete(since, &access.id, 10, now);
                if i == 0 {
                    tx.insert_notification(note).unwrap();
                }
                tx.append_audit(&entry(
                    i as i64,
                    actor("clinician", Some("RXX01")),
                    "lookup.unscheduled",
                    Some(child),
                ))
                .unwrap();
                tx.commit().unwrap();
                done_tx.send((records, earlier, attendance)).unwrap();
            });
            let Ok((records, earlier, attendance)) =
                done.recv_timeout(std::time::Duration::from_secs(30))
            else {
                // Let the upload end (and the lookup behind it) so that the test fails, not hangs.
                release_tx.send(()).unwrap();
                panic!("a lookup waited for the upload's open transaction");
            };
            // The snapshot: the committed record, not the upload's uncommitted one.
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].la, la(LA_A));
            // The second group sees the first one's access (from the spool on SQLite); each
            // counts itself in the attendance.
            let ids: Vec<&str> = earlier.iter().map(|a| a.id.as_str()).collect();
            assert_eq!(
                ids,
                if i == 0 {
                    vec![]
                } else {
                    vec![first.id.as_str()]
                }
            );
            assert_eq!(attendance.counts.seen_6_months, i as u32 + 1);
            assert_eq!(
                attendance.organisations_30_days,
                vec!["General Hospital".to_owned()]
            );
        }
        release_tx.send(()).unwrap();
        upload.join().unwrap();
    });
    // Drained by another store on the same database (a restarted server), then by this one: the
    // entries the first copied are not copied again.
    let again = ctx.reopen();
    while again.drain_lookup_spool().unwrap() > 0 {}
    assert_eq!(s.drain_lookup_spool().unwrap(), 0);
    assert_eq!(ctx.reopen().drain_lookup_spool().unwrap(), 0);
    let ids: Vec<String> = s
        .recent_accesses(child, 10)
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![second.id.clone(), first.id.clone()]);
    let notes = s.notifications(&la(LA_A), 0, 100).unwrap();
    assert_eq!(notes.iter().filter(|n| n.id == note.id).count(), 1);
    assert_eq!(notes.len(), 1);
    assert!(record(s, other, LA_A).is_some(), "the upload applied");
    match s.audit_verify().unwrap() {
        AuditVerification::Intact { entries, .. } => assert_eq!(entries, audit_before + 2),
        broken => panic!("{broken:?}"),
    }
    // SQLite went through the spool: its five writes were counted written and copied in (other
    // tests of this process may add to the counters, never take away).
    if !ctx.is_postgres() {
        let (written, copied) = cpis_store::sqlite::lookup_spool_entries();
        assert!(
            written >= spool_before.0 + 5,
            "{spool_before:?} -> {written}"
        );
        assert!(copied >= spool_before.1 + 5, "{spool_before:?} -> {copied}");
    }
}

/// A lookup answered while an upload held the writer (on SQLite: from the lookup log) is, as soon
/// as the upload has committed, in every read of what lookups write (the LA's notifications, the
/// child's accesses, the audit log) and can be acknowledged, with nobody copying it in first:
/// the LA reads what the clinician was told it was sent.
fn a_lookup_made_during_an_upload_is_read_and_acknowledged_at_once_after_it(ctx: &Ctx) {
    use std::sync::mpsc::channel;
    let s = ctx.store();
    seed_directory(s);
    let child = nhs(0);
    apply(s, LA_A, &[row(child, PlanType::Cpp, "2026-01-01", None)]);
    let seen = access(1, child, AccessKind::Unscheduled);
    let note = notification(LA_A, 1);
    let (holding_tx, holding) = channel();
    let (release_tx, release) = channel::<()>();
    std::thread::scope(|scope| {
        let upload = scope.spawn(move || {
            let up = new_upload(LA_A, "held-open-2", "held-open-2-sha");
            let mut tx = s.begin_upload().unwrap();
            tx.insert_upload(&up).unwrap();
            holding_tx.send(()).unwrap();
            release.recv().unwrap();
            tx.finish(&completed(&up, 0), None).unwrap();
        });
        holding.recv().unwrap();
        let (done_tx, done) = channel();
        let (seen, note) = (&seen, &note);
        scope.spawn(move || {
            let mut tx = s.begin_lookups().unwrap();
            tx.insert_access(seen).unwrap();
            tx.insert_notification(note).unwrap();
            tx.append_audit(&entry(
                1,
                actor("clinician", Some("RXX01")),
                "lookup.unscheduled",
                Some(child),
            ))
            .unwrap();
            tx.commit().unwrap();
            done_tx.send(()).unwrap();
        });
        let answered = done.recv_timeout(std::time::Duration::from_secs(30));
        release_tx.send(()).unwrap();
        answered.expect("the lookup waited for the upload");
        upload.join().unwrap();
    });
    let notes = s.notifications(&la(LA_A), 0, 100).unwrap();
    assert_eq!(
        notes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        vec![note.id.as_str()]
    );
    let ids: Vec<String> = (s.recent_accesses(child, 10).unwrap().into_iter())
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![seen.id.clone()]);
    let audited = s
        .audit_search(&AuditQuery {
            subject_nhs: Some(child),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(
        audited
            .iter()
            .any(|r| r.entry.action == "lookup.unscheduled"),
        "{audited:?}"
    );
    assert!(matches!(
        s.acknowledge(&la(LA_A), &note.id, "la-officer", t0() + Duration::hours(1))
            .unwrap(),
        Ack::Acknowledged(_)
    ));
}
