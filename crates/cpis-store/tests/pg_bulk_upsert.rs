//! PostgreSQL's bulk upload path (`postgres/bulk.rs`, batches of 64 rows and more): a record the
//! upload leaves as it is is neither written nor locked. An `ON CONFLICT … DO UPDATE … WHERE`
//! locks every row it meets even when its `WHERE` is false, and a row lock is a write (the
//! tuple's `xmax`, a WAL record): for a reload or a daily file that repeats most of an LA's
//! records, one write per unchanged record, and a wait behind any transaction holding one.
//!
//! Runs when `CPIS_TEST_PG_URL` names a server where that user may create databases; otherwise
//! prints "skipped" and passes, unless `CPIS_REQUIRE_PG=1`.
//!
//! ```text
//! CPIS_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p cpis-store --test pg_bulk_upsert
//! ```

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use cpis_domain::report::{UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary};
use cpis_domain::upload::{RecordRow, SensitiveMark, UploadMode};
use cpis_domain::{FileOutcome, LocalAuthority, NhsNumber, OdsCode, Plan, PlanType};
use cpis_store::postgres::{PgStore, TempDatabase};
use cpis_store::{NewUpload, Store};

const LA: &str = "E08000026";
/// More than the bulk path's threshold, so the rows go through `COPY` and the staged upsert.
const ROWS: usize = 100;

fn admin_url() -> Option<String> {
    let url = std::env::var("CPIS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        assert!(
            !std::env::var("CPIS_REQUIRE_PG").is_ok_and(|v| v == "1"),
            "CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set"
        );
        println!("skipped: set CPIS_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the PostgreSQL bulk upsert tests");
    }
    url
}

fn la() -> OdsCode {
    OdsCode::parse(LA).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).single().unwrap()
}

fn d(s: &str) -> NaiveDate {
    cpis_domain::parse_iso_date(s).unwrap()
}

fn nhs(i: usize) -> NhsNumber {
    (999_000_000u32..)
        .filter_map(NhsNumber::from_prefix)
        .nth(i)
        .unwrap()
}

fn rows(given_name: &str, start: &str) -> Vec<RecordRow> {
    (0..ROWS)
        .map(|i| RecordRow {
            nhs_number: nhs(i),
            local_id: Some(format!("COV-{i}")),
            given_name: Some(given_name.into()),
            family_name: Some("Family".into()),
            date_of_birth: d("2015-03-04"),
            plan: Plan::new(PlanType::Cpp, d(start), None, None).unwrap(),
            sensitive: SensitiveMark::Unstated,
        })
        .collect()
}

/// Applies `rows` as one upload, through the store's upload transaction.
fn upload(store: &dyn Store, n: u32, rows: &[RecordRow], at: DateTime<Utc>) {
    let up = NewUpload {
        id: UploadId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap(),
        meta: UploadMeta {
            la: la(),
            file_id: format!("bulk-{n}"),
            mode: UploadMode::Delta,
            file_date: d("2026-11-01"),
            format: "cpis-upload/1".into(),
            channel: "api".into(),
        },
        content_sha256: format!("sha-bulk-{n}"),
        received_at: at,
    };
    let mut tx = store.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    for r in rows {
        tx.upsert(&la(), r, &up.id, at).unwrap();
    }
    tx.finish(
        &UploadSummary {
            id: up.id.clone(),
            meta: up.meta.clone(),
            content_sha256: up.content_sha256.clone(),
            status: UploadStatus::Completed,
            file_outcome: Some(FileOutcome::AllLoaded),
            message: None,
            counts: UploadCounts::default(),
            received_at: at,
            completed_at: Some(at),
            duplicate_of: None,
        },
        None,
    )
    .unwrap();
}

fn record(store: &dyn Store, n: NhsNumber) -> cpis_store::StoredRecord {
    store
        .records_for(n)
        .unwrap()
        .into_iter()
        .find(|r| r.la == la())
        .unwrap()
}

/// Each of the LA's records' row version and last locker or updater (`ctid`, `xmax`): a write
/// changes the first, a lock or a write the second.
fn row_versions(url: &str) -> Vec<(String, String)> {
    let url = url.to_owned();
    // The synchronous client on a plain thread, as the store itself does.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(
            "SELECT ctid::text, xmax::text FROM records WHERE la_ods = $1 ORDER BY id",
            &[&LA],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    })
    .join()
    .unwrap()
}

#[test]
fn a_bulk_upload_neither_writes_nor_locks_the_records_it_leaves_as_they_are() {
    let Some(admin) = admin_url() else { return };
    let db = TempDatabase::create(&admin).unwrap();
    let store = PgStore::open(db.url()).unwrap();
    store
        .upsert_local_authorities(
            &[LocalAuthority {
                ods_code: la(),
                name: "Coventry".into(),
                office_hours_phone: "01632 960001".into(),
                edt_phone: "01632 960002".into(),
                office_hours: cpis_domain::OfficeHours::standard(),
                secure_email: None,
                mesh_mailbox: None,
            }],
            t0(),
        )
        .unwrap();

    upload(&store, 1, &rows("Given", "2026-01-01"), t0());
    let loaded = row_versions(db.url());
    assert_eq!(loaded.len(), ROWS);

    // The same records with every plan changed: the plans are written, the records are neither
    // written nor locked.
    let later = t0() + Duration::hours(1);
    upload(&store, 2, &rows("Given", "2026-02-01"), later);
    let touched = (row_versions(db.url()).iter().zip(&loaded))
        .filter(|(now, then)| now != then)
        .count();
    assert_eq!(touched, 0, "records written or locked though unchanged");
    let held = record(&store, nhs(ROWS - 1));
    assert_eq!(held.updated_at, t0());
    assert_eq!(held.plans[0].start(), d("2026-02-01"));

    // A changed name is written, to every record that has it.
    let renamed_at = t0() + Duration::hours(2);
    upload(&store, 3, &rows("Renamed", "2026-02-01"), renamed_at);
    let renamed = row_versions(db.url());
    assert!(renamed
        .iter()
        .zip(&loaded)
        .all(|(now, then)| now.0 != then.0));
    let held = record(&store, nhs(0));
    assert_eq!(
        (held.given_name.as_deref(), held.updated_at),
        (Some("Renamed"), renamed_at)
    );
}
