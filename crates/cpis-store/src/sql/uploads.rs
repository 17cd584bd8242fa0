//! Uploads: summaries, per-row results, the data-quality counts, and the statements the upload
//! transaction writes a record and a row result with.

use super::{big, from_row, json_list, Db, Row, ToArg};
use crate::{RowFilter, StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::data_quality::UploadOutcomeCounts;
use cpis_domain::outcome::{DetailCode, RecordOutcome};
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{RecordRow, SensitiveMark};
use cpis_domain::{NhsNumber, OdsCode};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Registers an upload (status `processing`).
pub fn insert_upload(
    db: &mut dyn Db,
    id: &UploadId,
    meta: &UploadMeta,
    content_sha256: &str,
    received_at: DateTime<Utc>,
) -> StoreResult<()> {
    db.exec(
        "INSERT INTO uploads (id, la_ods, file_id, mode, file_date, format, channel,
                              content_sha256, status, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'processing', $9)",
        &[
            &id.as_str(),
            &meta.la.as_str(),
            &meta.file_id,
            &meta.mode.code(),
            &meta.file_date,
            &meta.format,
            &meta.channel,
            &content_sha256,
            &received_at,
        ],
    )?;
    Ok(())
}

pub fn upload_seq(db: &mut dyn Db, id: &UploadId) -> StoreResult<i64> {
    db.row("SELECT seq FROM uploads WHERE id = $1", &[&id.as_str()])?
        .ok_or_else(|| StoreError::Constraint("no such upload".into()))?
        .get(0)
}

/// The record outcome counts stored in `cpr01`…`cpr07`, read from column `at` on (zeros left out).
fn by_outcome(r: &Row, at: usize) -> StoreResult<BTreeMap<RecordOutcome, u64>> {
    let mut counts = BTreeMap::new();
    for (i, o) in RecordOutcome::ALL.into_iter().enumerate() {
        let n: u64 = r.get(at + i)?;
        if n > 0 {
            counts.insert(o, n);
        }
    }
    Ok(counts)
}

fn outcome_count(s: &UploadSummary, o: RecordOutcome) -> i64 {
    big(s.counts.by_outcome.get(&o).copied().unwrap_or(0))
}

pub fn update_summary(db: &mut dyn Db, s: &UploadSummary) -> StoreResult<()> {
    let n = db.exec(
        "UPDATE uploads SET status = $2, effective = $3, file_outcome = $4, message = $5,
             rows_total = $6, rows_accepted = $7, rows_rejected = $8,
             cpr01 = $9, cpr02 = $10, cpr03 = $11, cpr04 = $12, cpr05 = $13, cpr06 = $14, cpr07 = $15,
             plans_ended = $16, deleted = $17, completed_at = $18, duplicate_of = $19
         WHERE id = $1",
        &[
            &s.id.as_str(),
            &s.status.code(),
            &s.is_effective(),
            &s.file_outcome.map(|o| o.code()),
            &s.message,
            &big(s.counts.rows),
            &big(s.counts.accepted),
            &big(s.counts.rejected),
            &outcome_count(s, RecordOutcome::NotFound),
            &outcome_count(s, RecordOutcome::Sensitive),
            &outcome_count(s, RecordOutcome::DobMismatch),
            &outcome_count(s, RecordOutcome::MalformedNhsNumber),
            &outcome_count(s, RecordOutcome::Superseded),
            &outcome_count(s, RecordOutcome::Accepted),
            &outcome_count(s, RecordOutcome::Invalid),
            &big(s.counts.plans_ended),
            &big(s.counts.deleted),
            &s.completed_at,
            &s.duplicate_of.as_ref().map(|d| d.as_str()),
        ],
    )?;
    if n != 1 {
        return Err(StoreError::Constraint("no such upload".into()));
    }
    Ok(())
}

/// Inserts a whole summary (an upload refused before any row was read), inside the caller's
/// transaction.
pub fn insert_summary(db: &mut dyn Db, s: &UploadSummary) -> StoreResult<()> {
    insert_upload(db, &s.id, &s.meta, &s.content_sha256, s.received_at)?;
    update_summary(db, s)
}

const SUMMARY_COLUMNS: &str =
    "id, la_ods, file_id, mode, file_date, format, channel, content_sha256,
    status, file_outcome, message, rows_total, rows_accepted, rows_rejected,
    cpr01, cpr02, cpr03, cpr04, cpr05, cpr06, cpr07, plans_ended, deleted,
    received_at, completed_at, duplicate_of";

fn summary_from_row(r: &Row) -> StoreResult<UploadSummary> {
    let counts = UploadCounts {
        rows: r.get(11)?,
        accepted: r.get(12)?,
        rejected: r.get(13)?,
        by_outcome: by_outcome(r, 14)?,
        plans_ended: r.get(21)?,
        deleted: r.get(22)?,
    };
    Ok(UploadSummary {
        id: r.get(0)?,
        meta: UploadMeta {
            la: r.get(1)?,
            file_id: r.get(2)?,
            mode: r.get(3)?,
            file_date: r.get(4)?,
            format: r.get(5)?,
            channel: r.get(6)?,
        },
        content_sha256: r.get(7)?,
        status: r.get(8)?,
        file_outcome: r.get(9)?,
        message: r.get(10)?,
        counts,
        received_at: r.get(23)?,
        completed_at: r.get(24)?,
        duplicate_of: r.get(25)?,
    })
}

pub fn summary(db: &mut dyn Db, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>> {
    db.find(
        &format!("SELECT {SUMMARY_COLUMNS} FROM uploads WHERE id = $1 AND la_ods = $2"),
        &[&id.as_str(), &la.as_str()],
        summary_from_row,
    )
}

pub fn recent(db: &mut dyn Db, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
    db.list(
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM uploads WHERE la_ods = $1 ORDER BY seq DESC LIMIT $2"
        ),
        &[&la.as_str(), &i64::from(limit)],
        summary_from_row,
    )
}

pub fn rows(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &UploadId,
    f: &RowFilter,
) -> StoreResult<Vec<RowResult>> {
    db.list(
        "SELECT ur.row_no, ur.nhs_number, ur.outcome, ur.detail, ur.message, ur.new_nhs_number,
                ur.local_id
         FROM upload_rows ur JOIN uploads u ON u.seq = ur.upload_seq
         WHERE u.id = $1 AND u.la_ods = $2 AND ur.row_no > $3
           AND ($4::text IS NULL OR ur.outcome = $4::text)
         ORDER BY ur.row_no LIMIT $5",
        &[
            &id.as_str(),
            &la.as_str(),
            &big(f.after_row),
            &f.outcome.map(|o| o.code()),
            &i64::from(f.limit),
        ],
        |r| {
            Ok(from_row!(r, 0 => RowResult {
                row, nhs_number, outcome, detail, message, new_nhs_number, local_id
            }))
        },
    )
}

pub fn held_file(db: &mut dyn Db, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>> {
    db.find(
        "SELECT h.content FROM held_files h JOIN uploads u ON u.seq = h.upload_seq
         WHERE u.id = $1 AND u.la_ods = $2",
        &[&id.as_str(), &la.as_str()],
        |r| r.get(0),
    )
}

/// How many uploads of `la` were applied after upload `id` was received.
pub fn applied_since(db: &mut dyn Db, la: &OdsCode, id: &UploadId) -> StoreResult<u64> {
    db.count(
        "SELECT count(*) FROM uploads
         WHERE la_ods = $2 AND status = 'completed' AND effective
           AND seq > (SELECT seq FROM uploads WHERE id = $1 AND la_ods = $2)",
        &[&id.as_str(), &la.as_str()],
    )
}

/// The counts each completed upload stores, and its inactive-number rows counted from the row
/// results (the data-quality report).
pub fn la_upload_stats(
    db: &mut dyn Db,
    la: &OdsCode,
    since: DateTime<Utc>,
) -> StoreResult<Vec<UploadOutcomeCounts>> {
    db.list(
        "SELECT u.id, u.file_id, u.received_at, u.file_outcome, u.rows_total,
                u.cpr01, u.cpr02, u.cpr03, u.cpr04, u.cpr05, u.cpr06, u.cpr07,
                (SELECT count(*) FROM upload_rows r
                  WHERE r.upload_seq = u.seq AND r.outcome = $3 AND r.detail = $4)
           FROM uploads u
          WHERE u.la_ods = $1 AND u.status = $2 AND u.received_at >= $5
          ORDER BY u.seq",
        &[
            &la.as_str(),
            &UploadStatus::Completed.code(),
            &RecordOutcome::Invalid.code(),
            &DetailCode::NhsNumberInactive.code(),
            &since,
        ],
        |r| {
            Ok(UploadOutcomeCounts {
                id: r.get(0)?,
                file_id: r.get(1)?,
                received_at: r.get(2)?,
                file_outcome: r.get(3)?,
                rows: r.get(4)?,
                by_outcome: by_outcome(r, 5)?,
                inactive_nhs_numbers: r.get(12)?,
            })
        },
    )
}

/// An upsert the upload transaction has accepted but not yet written.
#[derive(Debug, Clone)]
pub struct PendingUpsert {
    pub la: OdsCode,
    pub row: RecordRow,
    pub upload: UploadId,
    pub now: DateTime<Utc>,
}

impl PendingUpsert {
    /// Whether the row's `sensitive` column is not empty (an empty one keeps an existing plan's
    /// mark).
    pub fn mark_stated(&self) -> bool {
        self.row.sensitive != SensitiveMark::Unstated
    }
}

/// What the LA already holds for an upsert's child and plan type, read before writing it.
struct Held {
    record_id: i64,
    marked: bool,
    fields: HeldFields,
    /// The plan of the row's type.
    plan: Option<HeldPlan>,
}

/// A held record's local id, given name, family name and date of birth.
type HeldFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDate>,
);
/// A held plan's start, end and expected delivery dates, and its mark.
type HeldPlan = (NaiveDate, Option<NaiveDate>, Option<NaiveDate>, bool);

/// The record of child `nhs` that `la` holds and its plan of type `kind`, locked for the rest of
/// the transaction (PostgreSQL; SQLite's writer holds the whole file).
fn held(db: &mut dyn Db, nhs: &str, la: &str, kind: &str) -> StoreResult<Option<Held>> {
    db.find(
        "SELECT r.id, r.sensitive, r.local_id, r.given_name, r.family_name, r.date_of_birth,
                p.record_id, p.start_date, p.end_date, p.expected_delivery_date, p.sensitive
         FROM records r LEFT JOIN plans p ON p.record_id = r.id AND p.plan_type = $3
         WHERE r.nhs_number = $1 AND r.la_ods = $2
         FOR UPDATE OF r",
        &[&nhs, &la, &kind],
        |r| {
            let plan = match r.get::<Option<i64>>(6)? {
                None => None,
                Some(_) => Some((r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?)),
            };
            Ok(Held {
                record_id: r.get(0)?,
                marked: r.get(1)?,
                fields: (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                plan,
            })
        },
    )
}

/// Writes one upsert. Returns whether the record lost its sensitive mark (an explicit `false` on
/// its last marked plan).
///
/// What the LA holds is read first and only what the row changes is written: a reload repeats
/// most of an LA's rows unchanged, and a record's `updated_at` and `last_upload_id` say when and
/// by which upload its own fields last changed (a plan's `updated_at`, when that plan last
/// changed). On SQLite this is also cheaper than an `INSERT … ON CONFLICT … RETURNING` per row
/// (measured: about twice the cost of a read and an update by id; it collects what it returns in
/// a temporary table).
pub fn upsert_one(db: &mut dyn Db, u: &PendingUpsert) -> StoreResult<bool> {
    let nhs = u.row.nhs_number.digits();
    let kind = u.row.plan.plan_type().code();
    let held = held(db, &nhs, u.la.as_str(), kind)?;
    upsert_held(db, u, &nhs, held)
}

/// Rows of one upload written together on SQLite ([`upsert_batch`]).
pub const SQLITE_BATCH: usize = 512;

/// SQLite only: writes a batch of upserts as [`upsert_one`] writes each, in order, with what the
/// LA holds for the whole batch read first in one statement (the numbers as a JSON array through
/// `json_each`; the read per row was a quarter of a 500k-row reload, issue #16). PostgreSQL
/// writes large batches through `postgres/bulk.rs` instead. A child the
/// batch names again is read again, after its earlier rows were written. Returns the numbers
/// whose record lost its sensitive mark.
pub fn upsert_batch(db: &mut dyn Db, batch: &[PendingUpsert]) -> StoreResult<Vec<NhsNumber>> {
    let mut unmarked = Vec::new();
    let Some(first) = batch.first() else {
        return Ok(unmarked);
    };
    if batch.len() == 1 || batch.iter().any(|u| u.la != first.la) {
        for u in batch {
            if upsert_one(db, u)? {
                unmarked.push(u.row.nhs_number);
            }
        }
        return Ok(unmarked);
    }
    let la = first.la.as_str();
    let digits: Vec<String> = batch.iter().map(|u| u.row.nhs_number.digits()).collect();
    let mut held_now = held_many(db, la, &digits)?;
    let mut seen = HashSet::with_capacity(batch.len());
    for (u, nhs) in batch.iter().zip(&digits) {
        let kind = u.row.plan.plan_type().code();
        let held = if seen.insert(nhs.as_str()) {
            held_now.remove(nhs).map(|record| record.with_plan(kind))
        } else {
            held(db, nhs, la, kind)?
        };
        if upsert_held(db, u, nhs, held)? {
            unmarked.push(u.row.nhs_number);
        }
    }
    Ok(unmarked)
}

/// A record `la` holds, with all its plans (by type), as [`held_many`] reads it.
struct HeldRecord {
    record_id: i64,
    marked: bool,
    fields: HeldFields,
    plans: Vec<(String, HeldPlan)>,
}

impl HeldRecord {
    fn with_plan(mut self, kind: &str) -> Held {
        let plan =
            (self.plans.iter().position(|(k, _)| k == kind)).map(|i| self.plans.swap_remove(i).1);
        Held {
            record_id: self.record_id,
            marked: self.marked,
            fields: self.fields,
            plan,
        }
    }
}

/// The records `la` holds for these children, with their plans, by NHS number (SQLite only: one
/// statement, `json_each`).
fn held_many(
    db: &mut dyn Db,
    la: &str,
    children: &[String],
) -> StoreResult<HashMap<String, HeldRecord>> {
    let list = json_list(children)?;
    let rows = db.rows(
        "SELECT r.nhs_number, r.id, r.sensitive, r.local_id, r.given_name, r.family_name,
                r.date_of_birth, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date,
                p.sensitive
         FROM records r LEFT JOIN plans p ON p.record_id = r.id
         WHERE r.la_ods = $1 AND r.nhs_number IN (SELECT value FROM json_each($2))",
        &[&la, &list],
    )?;
    let mut out: HashMap<String, HeldRecord> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let record = match out.entry(r.get(0)?) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(HeldRecord {
                record_id: r.get(1)?,
                marked: r.get(2)?,
                fields: (r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
                plans: Vec::new(),
            }),
        };
        if let Some(kind) = r.get::<Option<String>>(7)? {
            let plan = (r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?);
            record.plans.push((kind, plan));
        }
    }
    Ok(out)
}

/// Writes one upsert given what the LA holds for its child and plan type (`held`, read in this
/// transaction and not changed since).
fn upsert_held(
    db: &mut dyn Db,
    u: &PendingUpsert,
    nhs: &str,
    held: Option<Held>,
) -> StoreResult<bool> {
    let (r, plan, marked) = (&u.row, &u.row.plan, u.row.sensitive.is_marked());
    let (la, upload) = (u.la.as_str(), u.upload.as_str());
    // A record's columns after its key ($1, $2), as both statements below take them.
    let record: [&dyn ToArg; 6] = [
        &r.local_id,
        &r.given_name,
        &r.family_name,
        &r.date_of_birth,
        &u.now,
        &upload,
    ];
    let kind = plan.plan_type().code();
    let (record_id, was_marked, held_plan) = match held {
        Some(h) => {
            let (local_id, given_name, family_name, date_of_birth) = &h.fields;
            let same = (local_id, given_name, family_name, *date_of_birth)
                == (
                    &r.local_id,
                    &r.given_name,
                    &r.family_name,
                    Some(r.date_of_birth),
                );
            if !same {
                db.exec(
                    "UPDATE records SET local_id = $3, given_name = $4, family_name = $5,
                         date_of_birth = $6, updated_at = $7, last_upload_id = $8
                     WHERE id = $1 AND la_ods = $2",
                    &[&[&h.record_id as &dyn ToArg, &la][..], &record[..]].concat(),
                )?;
            }
            (h.record_id, h.marked, h.plan)
        }
        None => {
            // A new record, written by an upsert all the same: on PostgreSQL a number another
            // transaction moves here (a superseded number's records) meets it on the key. The
            // record's mark is not set by one row: it follows its plans' marks (below).
            let row = db.one(
                "INSERT INTO records (nhs_number, la_ods, local_id, given_name, family_name,
                                      date_of_birth, sensitive, created_at, updated_at,
                                      last_upload_id)
                 VALUES ($1, $2, $3, $4, $5, $6, false, $7, $7, $8)
                 ON CONFLICT (nhs_number, la_ods) DO UPDATE SET
                     local_id = excluded.local_id, given_name = excluded.given_name,
                     family_name = excluded.family_name, date_of_birth = excluded.date_of_birth,
                     updated_at = excluded.updated_at, last_upload_id = excluded.last_upload_id
                 RETURNING id, sensitive",
                &[&[&nhs as &dyn ToArg, &la][..], &record[..]].concat(),
            )?;
            (row.get(0)?, row.get(1)?, None)
        }
    };
    let (start, end, expected) = (plan.start(), plan.end(), plan.expected_delivery());
    // A plan's key and dates ($1 to $5), as both statements below take them.
    let dates: [&dyn ToArg; 5] = [&record_id, &kind, &start, &end, &expected];
    match held_plan {
        // A new plan (or, on PostgreSQL, one a moved record brought: the upsert meets it).
        None => {
            db.exec(
                "INSERT INTO plans (record_id, plan_type, start_date, end_date,
                                    expected_delivery_date, sensitive, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (record_id, plan_type) DO UPDATE SET
                     start_date = excluded.start_date, end_date = excluded.end_date,
                     expected_delivery_date = excluded.expected_delivery_date,
                     sensitive = CASE WHEN $8 THEN excluded.sensitive ELSE plans.sensitive END,
                     updated_at = excluded.updated_at",
                &[&dates[..], &[&marked, &u.now, &u.mark_stated()]].concat(),
            )?;
        }
        Some(held) => {
            // An empty `sensitive` column keeps the plan's mark.
            let mark = if u.mark_stated() { marked } else { held.3 };
            if held != (start, end, expected, mark) {
                db.exec(
                    "UPDATE plans SET start_date = $3, end_date = $4, expected_delivery_date = $5,
                         sensitive = $6, updated_at = $7
                     WHERE record_id = $1 AND plan_type = $2",
                    &[&dates[..], &[&mark, &u.now]].concat(),
                )?;
            }
        }
    }
    if marked && !was_marked {
        db.exec(
            "UPDATE records SET sensitive = true WHERE id = $1",
            &[&record_id],
        )?;
    } else if u.mark_stated() && !marked && was_marked {
        // Cleared when the record has no marked plan left; a row changed = the mark went.
        return Ok(db.exec(
            "UPDATE records SET sensitive = false
             WHERE id = $1 AND sensitive
               AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = $1 AND sensitive)",
            &[&record_id],
        )? == 1);
    }
    Ok(false)
}

/// Row results written by one `INSERT` on the per-statement path (SQLite, and PostgreSQL's
/// small batches): one statement for many rows costs less than as many single-row ones (issue
/// #16: a 500k-row file has 500k results).
pub const RESULTS_PER_INSERT: usize = 32;

/// Writes row results: whole groups of [`RESULTS_PER_INSERT`] a statement each, the rest one by
/// one.
pub fn row_results(db: &mut dyn Db, upload_seq: i64, rows: &[RowResult]) -> StoreResult<()> {
    static STATEMENTS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let [one, group] =
        STATEMENTS.get_or_init(|| [results_insert(1), results_insert(RESULTS_PER_INSERT)]);
    let mut groups = rows.chunks_exact(RESULTS_PER_INSERT);
    for g in &mut groups {
        insert_results(db, group, upload_seq, g)?;
    }
    for r in groups.remainder() {
        insert_results(db, one, upload_seq, std::slice::from_ref(r))?;
    }
    Ok(())
}

/// The insert of `n` row results.
fn results_insert(n: usize) -> String {
    let values: Vec<String> = (0..n)
        .map(|i| {
            let p = (1..=8)
                .map(|c| format!("${}", i * 8 + c))
                .collect::<Vec<_>>();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO upload_rows (upload_seq, row_no, nhs_number, outcome, detail, message,
                                  new_nhs_number, local_id)
         VALUES {}",
        values.join(", ")
    )
}

fn insert_results(
    db: &mut dyn Db,
    sql: &str,
    upload_seq: i64,
    rows: &[RowResult],
) -> StoreResult<()> {
    let derived: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                big(r.row),
                r.outcome.code(),
                r.detail.map(|d| d.code()),
                r.new_nhs_number.map(|n| n.digits()),
            )
        })
        .collect();
    let mut args: Vec<&dyn ToArg> = Vec::with_capacity(rows.len() * 8);
    for (r, (row, outcome, detail, new_nhs)) in rows.iter().zip(&derived) {
        args.extend([
            &upload_seq as &dyn ToArg,
            row,
            &r.nhs_number,
            outcome,
            detail,
            &r.message,
            new_nhs,
            &r.local_id,
        ]);
    }
    db.exec(sql, &args)?;
    Ok(())
}
