//! Upload throughput benchmark on synthetic data (SPEC 6: a 5k-row LA daily file ≤ 100 ms, a
//! 500k-row full reload ≤ 5 s). Used by `cpis bench upload`; the figures go to BENCHMARKS.md.
//! [`seed_on`] (`cpis bench seed`) loads the same synthetic LA and children into a database that
//! is then served, for the scale and upload-contention scripts (scripts/bench-*.sh).

use crate::upload::{EngineError, SpoolError, Spooler, Submitted, UploadEngine, UploadSettings};
use chrono::{Days, NaiveDate, Utc};
use cpis_domain::report::UploadMeta;
use cpis_domain::upload::{UploadMode, FORMAT_V1};
use cpis_domain::{
    DemographicStatus, Demographics, LocalAuthority, NhsNumber, OdsCode, SystemClock,
};
use cpis_store::{Store, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// One measured upload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub scenario: String,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub file_outcome: String,
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid code"
)]
pub fn bench_la() -> OdsCode {
    OdsCode::parse("E99999999").expect("valid code")
}

/// The first `n` synthetic children's NHS numbers (prefix 600,000,000 + i, skipping prefixes
/// with no valid check digit).
pub fn children(n: usize) -> Vec<NhsNumber> {
    (600_000_000u32..)
        .filter_map(NhsNumber::from_prefix)
        .take(n)
        .collect()
}

#[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail: date")]
fn dob(i: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2010, 1, 1).expect("date") + Days::new((i % 5800) as u64)
}

/// Writes the CSV of an upload file for `nhs` (header first) in pieces of about 1 MiB to `out`.
/// `variant` shifts some rows so a reload really changes data.
#[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail: date")]
pub fn write_upload_csv<E>(
    nhs: &[NhsNumber],
    variant: usize,
    mut out: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf = String::with_capacity(1 << 20);
    buf.push_str(&cpis_domain::upload::HEADER.join(","));
    buf.push('\n');
    for (i, n) in nhs.iter().enumerate() {
        let plan = if i.is_multiple_of(7) { "LAC" } else { "CPP" };
        let start = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date")
            + Days::new(((i + variant) % 600) as u64);
        let end = if (i + variant).is_multiple_of(10) {
            "2026-10-01"
        } else {
            ""
        };
        buf.push_str(&format!(
            "upsert,{n},BEN-{i:07},Child{i},Bench,{},{plan},{start},{end},,false\n",
            dob(i)
        ));
        if buf.len() > (1 << 20) - 256 {
            out(buf.as_bytes())?;
            buf.clear();
        }
    }
    out(buf.as_bytes())
}

/// Writes an upload file. `variant` shifts some rows so a reload really changes data.
fn upload_file(
    nhs: &[NhsNumber],
    variant: usize,
) -> Result<crate::upload::SpooledFile, SpoolError> {
    let mut spool = Spooler::new(None, u64::MAX)?;
    write_upload_csv(nhs, variant, |chunk| spool.write_chunk(chunk))?;
    spool.finish()
}

#[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail: date")]
fn measure(
    engine: &UploadEngine,
    scenario: &str,
    mode: UploadMode,
    file: &crate::upload::SpooledFile,
    file_id: &str,
) -> Result<Measurement, BenchError> {
    let meta = UploadMeta {
        la: bench_la(),
        file_id: file_id.to_owned(),
        mode,
        file_date: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        format: FORMAT_V1.to_owned(),
        channel: "bench".to_owned(),
    };
    let started = Instant::now();
    let out = engine.submit(
        &super::upload::operator_capability(&bench_la(), "bench"),
        meta,
        file,
        &|_| {},
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let s = match out {
        Submitted::New(s) | Submitted::Replay(s) => s,
    };
    Ok(Measurement {
        scenario: scenario.to_owned(),
        rows: s.counts.rows,
        bytes: file.len(),
        seconds,
        rows_per_second: s.counts.rows as f64 / seconds,
        file_outcome: s
            .file_outcome
            .map_or_else(|| s.status.code().to_owned(), |o| o.code().to_owned()),
    })
}

/// Runs the upload benchmark in a fresh SQLite database inside `dir`:
/// a first full load of `rows` rows, a full reload of the same children with changed plans, and
/// a `daily_rows`-row delta file on top.
pub fn upload(dir: &Path, rows: usize, daily_rows: usize) -> Result<Vec<Measurement>, BenchError> {
    let store: Arc<dyn Store> =
        Arc::new(cpis_store::sqlite::SqliteStore::open(dir.join("bench.db"))?);
    upload_on(store, rows, daily_rows)
}

/// The same benchmark on a store the caller opened, which must be empty (a fresh database of
/// any backend: `cpis bench upload --database postgres://…` passes a new PostgreSQL database).
/// The synthetic LA and an active demographics entry for each of `nhs`.
fn prepare(store: &dyn Store, nhs: &[NhsNumber]) -> Result<(), BenchError> {
    let now = Utc::now();
    store.upsert_local_authorities(
        &[LocalAuthority {
            ods_code: bench_la(),
            name: "Benchmark Borough".into(),
            office_hours_phone: "01632 960999".into(),
            edt_phone: "020 7946 0999".into(),
            office_hours: cpis_domain::OfficeHours::standard(),
            secure_email: None,
            mesh_mailbox: None,
        }],
        now,
    )?;
    for (chunk_no, chunk) in nhs.chunks(100_000).enumerate() {
        let entries: Vec<Demographics> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| Demographics {
                nhs_number: *n,
                status: DemographicStatus::Active,
                date_of_birth: dob(chunk_no * 100_000 + i),
                sensitive: false,
                mother_nhs_number: None,
            })
            .collect();
        store.upsert_demographics(&entries, now)?;
    }
    Ok(())
}

/// Seeds a database for serving: the synthetic LA (`E99999999`, see [`bench_la`]), `records`
/// children in the demographics index and one full upload of a plan for each, through the
/// engine as any upload. The store may already hold other data (the demo data, say); the
/// synthetic LA's plans are replaced. Returns the upload's measurement.
pub fn seed_on(store: Arc<dyn Store>, records: usize) -> Result<Measurement, BenchError> {
    let nhs = children(records);
    prepare(store.as_ref(), &nhs)?;
    let engine = UploadEngine::new(
        store,
        Arc::new(SystemClock),
        UploadSettings {
            mass_end_threshold: 1.0,
        },
    );
    let file = upload_file(&nhs, 0)?;
    measure(
        &engine,
        &format!("seed: full load, {records} rows"),
        UploadMode::Full,
        &file,
        &format!("bench-seed-{}", Utc::now().timestamp_millis()),
    )
}

pub fn upload_on(
    store: Arc<dyn Store>,
    rows: usize,
    daily_rows: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let nhs = children(rows.max(daily_rows));
    prepare(store.as_ref(), &nhs)?;
    // No mass-ending guard: the benchmark measures the engine, not the confirmation step.
    let engine = UploadEngine::new(
        store,
        Arc::new(SystemClock),
        UploadSettings {
            mass_end_threshold: 1.0,
        },
    );
    let first = upload_file(&nhs[..rows], 0)?;
    let reload = upload_file(&nhs[..rows], 3)?;
    let daily = upload_file(&nhs[..daily_rows], 5)?;
    Ok(vec![
        measure(
            &engine,
            &format!("full load, {rows} rows, empty LA"),
            UploadMode::Full,
            &first,
            "bench-full-1",
        )?,
        measure(
            &engine,
            &format!("full reload, {rows} rows, all changed or kept"),
            UploadMode::Full,
            &reload,
            "bench-full-2",
        )?,
        measure(
            &engine,
            &format!("daily delta, {daily_rows} rows, on {rows} records"),
            UploadMode::Delta,
            &daily,
            "bench-daily",
        )?,
    ])
}
