//! The PostgreSQL read replica (`cpis_store::open_with_replica`): which queries go to it, and
//! that nothing is ever written to it.
//!
//! The "replica" here is a second database with the same schema and no data (no streaming
//! replication is needed to tell where a query went): lookups through the store's `LookupTx`
//! still see the primary's records (transactions stay on the primary), while the reads routed to
//! the replica return its — empty — data, unless they are point reads that ask the primary when
//! the replica has nothing (read-your-writes). `tests/store_contract.rs` also runs the whole
//! storage contract with a replica that is the same database (`postgres_replica::*`).
//!
//! Runs when `CPIS_TEST_PG_URL` names a server where that user may create databases; otherwise
//! prints "skipped" and passes, unless `CPIS_REQUIRE_PG=1`.
//!
//! ```text
//! CPIS_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test -p cpis-store --test pg_replica
//! ```

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use cpis_domain::notification::Ack;
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{RecordRow, UploadMode};
use cpis_domain::{
    Access, AccessKind, Accessor, AuditActor, AuditEntry, CareSetting, DemographicStatus,
    Demographics, FileOutcome, LocalAuthority, NewNotification, NhsNumber, NotificationKind,
    OdsCode, Plan, PlanType, RecordOutcome, SettingType,
};
use cpis_store::postgres::{PgStore, TempDatabase};
use cpis_store::{AuditQuery, NewUpload, RowFilter, Store};

const LA: &str = "E08000026";
const SETTING: &str = "RXX01";

fn admin_url() -> Option<String> {
    let url = std::env::var("CPIS_TEST_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        assert!(
            !std::env::var("CPIS_REQUIRE_PG").is_ok_and(|v| v == "1"),
            "CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set"
        );
        println!("skipped: set CPIS_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the PostgreSQL replica tests");
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

/// Directory, demographics, one upload of one record, and one notifying lookup of that child
/// (access, audit entry, notification), all through `store`. Returns the upload and the
/// notification's id.
fn write_everything(store: &dyn Store) -> (NewUpload, String) {
    let child = nhs(0);
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
    store
        .upsert_care_settings(
            &[CareSetting {
                ods_code: OdsCode::parse(SETTING).unwrap(),
                name: "General Hospital ED".into(),
                setting_type: SettingType::EmergencyDepartment,
                phone: None,
            }],
            t0(),
        )
        .unwrap();
    store
        .upsert_demographics(
            &[Demographics {
                nhs_number: child,
                status: DemographicStatus::Active,
                date_of_birth: d("2015-03-04"),
                sensitive: false,
                mother_nhs_number: None,
            }],
            t0(),
        )
        .unwrap();

    let up = NewUpload {
        id: UploadId::parse("00000000-0000-4000-8000-000000000001").unwrap(),
        meta: UploadMeta {
            la: la(),
            file_id: "replica-test".into(),
            mode: UploadMode::Delta,
            file_date: d("2026-11-01"),
            format: "cpis-upload/1".into(),
            channel: "api".into(),
        },
        content_sha256: "sha-replica-test".into(),
        received_at: t0(),
    };
    let row = RecordRow {
        nhs_number: child,
        local_id: Some("COV-1".into()),
        given_name: Some("Given".into()),
        family_name: Some("Family".into()),
        date_of_birth: d("2015-03-04"),
        plan: Plan::new(PlanType::Cpp, d("2026-01-01"), None, None).unwrap(),
        sensitive: cpis_domain::upload::SensitiveMark::Unstated,
    };
    let mut tx = store.begin_upload().unwrap();
    tx.insert_upload(&up).unwrap();
    tx.add_row_result(
        &up.id,
        &RowResult {
            row: 1,
            nhs_number: child.digits(),
            outcome: RecordOutcome::Accepted,
            detail: None,
            message: None,
            new_nhs_number: None,
            local_id: None,
        },
    )
    .unwrap();
    tx.upsert(&la(), &row, &up.id, t0()).unwrap();
    let mut counts = UploadCounts::default();
    counts.add(RecordOutcome::Accepted);
    tx.finish(
        &UploadSummary {
            id: up.id.clone(),
            meta: up.meta.clone(),
            content_sha256: up.content_sha256.clone(),
            status: UploadStatus::Completed,
            file_outcome: Some(FileOutcome::AllLoaded),
            message: None,
            counts,
            received_at: t0(),
            completed_at: Some(t0() + Duration::seconds(1)),
            duplicate_of: None,
        },
        None,
    )
    .unwrap();

    // A notifying lookup, as the lookup service runs it: its view on the primary, then its
    // writes in one transaction.
    let view = store.lookup_view(child, 25, t0()).unwrap();
    assert_eq!(
        view.records.len(),
        1,
        "the lookup's view sees the primary's record"
    );
    assert_eq!(view.local_authorities.len(), 1);
    let mut tx = store.begin_lookups().unwrap();
    tx.insert_access(&Access {
        id: "access-1".into(),
        time: t0(),
        nhs_number: child,
        accessor: Accessor {
            user_id: "user-1".into(),
            user_name: "User One".into(),
            role: "Clinician".into(),
            organisation: OdsCode::parse(SETTING).unwrap(),
            organisation_name: "General Hospital ED".into(),
            setting_type: Some(SettingType::EmergencyDepartment),
            nhs: Default::default(),
            organisation_phone: None,
            contact: Default::default(),
        },
        kind: AccessKind::Unscheduled,
        trace_id: None,
    })
    .unwrap();
    tx.append_audit(
        &AuditEntry::new(
            t0(),
            AuditActor {
                id: "user-1".into(),
                name: "User One".into(),
                organisation: Some(SETTING.into()),
                role: "Clinician".into(),
            },
            "lookup.unscheduled",
            None,
        )
        .about(child),
    )
    .unwrap();
    let note = "note-1".to_owned();
    tx.insert_notification(&NewNotification {
        id: note.clone(),
        la: la(),
        kind: NotificationKind::Access,
        created_at: t0(),
        payload: "{}".into(),
    })
    .unwrap();
    tx.commit().unwrap();
    (up, note)
}

/// Row counts of every table that holds data, straight from the database `url` names.
fn table_counts(url: &str) -> Vec<(&'static str, i64)> {
    const TABLES: &[&str] = &[
        "local_authorities",
        "care_settings",
        "demographics",
        "records",
        "plans",
        "uploads",
        "upload_rows",
        "accesses",
        "notifications",
        "audit_log",
        "users",
        "api_tokens",
        "sessions",
    ];
    let url = url.to_owned();
    // The synchronous client on a plain thread, as the store itself does.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        TABLES
            .iter()
            .map(|t| {
                let n: i64 = c
                    .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                    .unwrap()
                    .get(0);
                (*t, n)
            })
            .collect()
    })
    .join()
    .unwrap()
}

#[test]
fn a_replica_of_the_same_database_serves_every_routed_read() {
    let Some(admin) = admin_url() else { return };
    let db = TempDatabase::create(&admin).unwrap();
    let store = PgStore::open_with_replica(db.url(), db.url()).unwrap();
    assert!(store.has_replica());
    let (up, note) = write_everything(&store);
    let child = nhs(0);

    assert_eq!(
        store.local_authority(&la()).unwrap().unwrap().name,
        "Coventry"
    );
    assert_eq!(store.local_authorities().unwrap().len(), 1);
    assert!(store
        .care_setting(&OdsCode::parse(SETTING).unwrap())
        .unwrap()
        .is_some());
    assert!(store.demographics(child).unwrap().is_some());
    assert_eq!(store.records_for(child).unwrap().len(), 1);
    assert_eq!(store.la_record_count(&la()).unwrap(), 1);
    assert_eq!(store.recent_accesses(child, 25).unwrap().len(), 1);
    let notes = store.notifications(&la(), 0, 100).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].id.as_str(), notes[0].seq), (note.as_str(), 1));
    assert_eq!(
        store.upload(&la(), &up.id).unwrap().unwrap().status,
        UploadStatus::Completed
    );
    assert_eq!(
        store
            .upload_rows(&la(), &up.id, &RowFilter::default())
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .audit_search(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    let c = store.counts().unwrap();
    assert_eq!((c.records, c.accesses, c.notifications), (1, 1, 1));

    // The acknowledgement is written on the primary; the replica (same database) then shows it.
    assert!(matches!(
        store.acknowledge(&la(), &note, "la-user", t0()).unwrap(),
        Ack::Acknowledged(_)
    ));
    assert!(store.notifications(&la(), 0, 100).unwrap()[0]
        .acknowledged_at
        .is_some());
    drop(store);
}

#[test]
fn writes_and_transactions_never_go_to_the_replica() {
    let Some(admin) = admin_url() else { return };
    let primary = TempDatabase::create(&admin).unwrap();
    let replica = TempDatabase::create(&admin).unwrap();
    // The replica: same schema, no data.
    drop(PgStore::open(replica.url()).unwrap());
    let store = PgStore::open_with_replica(primary.url(), replica.url()).unwrap();
    let (up, note) = write_everything(&store);
    let child = nhs(0);

    // Nothing reached the replica; everything is on the primary.
    for (table, n) in table_counts(replica.url()) {
        assert_eq!(n, 0, "{table} on the replica");
    }
    let on_primary: std::collections::HashMap<_, _> =
        table_counts(primary.url()).into_iter().collect();
    for table in [
        "local_authorities",
        "care_settings",
        "demographics",
        "records",
        "plans",
        "uploads",
        "upload_rows",
        "accesses",
        "notifications",
        "audit_log",
    ] {
        assert_eq!(on_primary[table], 1, "{table} on the primary");
    }

    // Lists read the replica: its (empty) data, i.e. what a lagging replica would show.
    assert!(store.notifications(&la(), 0, 100).unwrap().is_empty());
    assert!(store.recent_accesses(child, 25).unwrap().is_empty());
    assert!(store
        .audit_search(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    assert_eq!(store.la_record_count(&la()).unwrap(), 0);
    assert_eq!(store.counts().unwrap().notifications, 0);

    // Point reads that find nothing on the replica ask the primary: nothing just written is
    // reported missing.
    assert!(store.local_authority(&la()).unwrap().is_some());
    assert_eq!(store.local_authorities().unwrap().len(), 1);
    assert!(store
        .care_setting(&OdsCode::parse(SETTING).unwrap())
        .unwrap()
        .is_some());
    assert!(store.demographics(child).unwrap().is_some());
    assert_eq!(store.records_for(child).unwrap().len(), 1);
    assert_eq!(
        store
            .upload_rows(&la(), &up.id, &RowFilter::default())
            .unwrap()
            .len(),
        1
    );
    // Reads a write depends on stay on the primary.
    assert!(store.upload(&la(), &up.id).unwrap().is_some());

    // A lookup's view reads the primary, whatever the replica holds.
    let view = store.lookup_view(child, 25, t0()).unwrap();
    assert_eq!(view.records.len(), 1);
    assert_eq!(view.history.len(), 1);

    // Acknowledging writes (and reads) on the primary.
    assert!(matches!(
        store.acknowledge(&la(), &note, "la-user", t0()).unwrap(),
        Ack::Acknowledged(_)
    ));
    assert!(matches!(
        store.acknowledge(&la(), &note, "la-user", t0()).unwrap(),
        Ack::AlreadyAcknowledged(_)
    ));
    for (table, n) in table_counts(replica.url()) {
        assert_eq!(n, 0, "{table} on the replica after everything");
    }
    drop(store);
}

#[test]
fn an_unreachable_replica_sends_reads_to_the_primary() {
    let Some(admin) = admin_url() else { return };
    // A database that does not exist (created, then dropped).
    let gone = {
        let t = TempDatabase::create(&admin).unwrap();
        t.url().to_owned()
    };
    // Nothing listens on port 1.
    let refused = "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2".to_owned();
    for replica in [refused, gone] {
        let primary = TempDatabase::create(&admin).unwrap();
        let store = PgStore::open_with_replica(primary.url(), &replica).unwrap();
        let (_, note) = write_everything(&store);
        for _ in 0..2 {
            let notes = store.notifications(&la(), 0, 100).unwrap();
            assert_eq!(notes.len(), 1, "replica {replica}");
            assert_eq!(notes[0].id, note);
            assert_eq!(store.recent_accesses(nhs(0), 25).unwrap().len(), 1);
            assert_eq!(store.la_record_count(&la()).unwrap(), 1);
        }
        drop(store);
    }
}

#[test]
fn sqlite_ignores_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store =
        cpis_store::open_with_replica(&url, Some("postgres://postgres@127.0.0.1:1/x")).unwrap();
    assert_eq!(store.backend(), "sqlite");
    write_everything(store.as_ref());
    assert_eq!(store.notifications(&la(), 0, 100).unwrap().len(), 1);
}

#[test]
fn a_replica_must_be_postgres() {
    let Some(admin) = admin_url() else { return };
    let db = TempDatabase::create(&admin).unwrap();
    let err = cpis_store::open_with_replica(db.url(), Some("sqlite://replica.db"))
        .err()
        .expect("refused");
    assert!(matches!(err, cpis_store::StoreError::Config(_)), "{err}");
}
