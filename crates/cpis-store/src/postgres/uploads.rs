//! Uploads: the upload transaction, summaries and per-row results.
//!
//! The transaction buffers upserts and row results and writes them in bulk (COPY for large
//! batches), flushing before anything that reads or removes records (`has_record`, `open_plans`,
//! `delete`, `end_plan`) and at `finish`, so the outcome is the same as writing every row in file
//! order.

use super::bulk::{self, PendingUpsert};
use super::convert::{big, count, parse_nhs, parse_ods, ts};
use super::pool::{Conn, Pooled};
use super::LOCK_UPLOAD_LA;
use crate::{HeldClaim, NewUpload, RowFilter, StoreError, StoreResult, UploadTx};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::outcome::{DetailCode, FileOutcome, RecordOutcome};
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{RecordRow, SensitiveMark, UploadMode};
use cpis_domain::{NhsNumber, OdsCode, PlanType};
use postgres::Row;

/// Buffered rows are written once this many are waiting.
const FLUSH_AT: usize = 10_000;
/// Smaller batches are written row by row (cheaper than staging a COPY).
const COPY_FROM: usize = 64;

pub struct PgUploadTx<'a> {
    conn: Pooled<'a>,
    finished: bool,
    /// The upload's row key, looked up once rather than per result row.
    seq: Option<(UploadId, i64)>,
    /// LAs whose upload lock this transaction holds.
    locked: Vec<String>,
    upserts: Vec<PendingUpsert>,
    /// Row results waiting, all of the upload with this seq.
    results: Vec<RowResult>,
    results_seq: i64,
    /// Whether the COPY staging table exists in this transaction.
    staged: bool,
    audit_head: super::audit::Head,
    /// Records that lost their sensitive mark in this transaction.
    unmarked: Vec<NhsNumber>,
}

impl<'a> PgUploadTx<'a> {
    pub fn begin(mut conn: Pooled<'a>) -> StoreResult<Self> {
        conn.batch("BEGIN")?;
        Ok(PgUploadTx {
            conn,
            finished: false,
            seq: None,
            locked: Vec::new(),
            upserts: Vec::new(),
            results: Vec::new(),
            results_seq: 0,
            staged: false,
            audit_head: Default::default(),
            unmarked: Vec::new(),
        })
    }

    /// Takes the LA's upload lock (held until commit or rollback): one upload per LA at a time
    /// across every server sharing the database.
    fn lock_la(&mut self, la: &str) -> StoreResult<()> {
        if self.locked.iter().any(|l| l == la) {
            return Ok(());
        }
        self.conn.execute(
            "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))",
            &[&LOCK_UPLOAD_LA, &la],
        )?;
        self.locked.push(la.to_owned());
        Ok(())
    }

    fn seq(&mut self, id: &UploadId) -> StoreResult<i64> {
        match &self.seq {
            Some((cached, seq)) if cached == id => Ok(*seq),
            _ => {
                let seq = upload_seq(&mut self.conn, id)?;
                self.seq = Some((id.clone(), seq));
                Ok(seq)
            }
        }
    }

    fn flush_upserts(&mut self) -> StoreResult<()> {
        if self.upserts.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.upserts);
        let unmarked = if pending.len() < COPY_FROM {
            let mut unmarked = Vec::new();
            for u in &pending {
                if bulk::upsert_one(&mut self.conn, u)? {
                    unmarked.push(u.nhs_number.clone());
                }
            }
            unmarked
        } else {
            bulk::upsert_many(&mut self.conn, &pending, &mut self.staged)?
        };
        for n in unmarked {
            self.unmarked.push(parse_nhs(&n)?);
        }
        self.upserts = pending;
        self.upserts.clear();
        Ok(())
    }

    fn flush_results(&mut self) -> StoreResult<()> {
        if self.results.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.results);
        if pending.len() < COPY_FROM {
            for r in &pending {
                bulk::row_result_one(&mut self.conn, self.results_seq, r)?;
            }
        } else {
            bulk::row_results(&mut self.conn, self.results_seq, &pending)?;
        }
        self.results = pending;
        self.results.clear();
        Ok(())
    }
}

impl Drop for PgUploadTx<'_> {
    fn drop(&mut self) {
        if !self.finished && self.conn.batch("ROLLBACK").is_err() {
            self.conn.discard();
        }
    }
}

fn upload_seq(conn: &mut Conn, id: &UploadId) -> StoreResult<i64> {
    conn.query_opt("SELECT seq FROM uploads WHERE id = $1", &[&id.as_str()])?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| StoreError::Constraint("no such upload".into()))
}

const INSERT_UPLOAD: &str =
    "INSERT INTO uploads (id, la_ods, file_id, mode, file_date, format, channel,
                                  content_sha256, status, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'processing', $9)";

impl UploadTx for PgUploadTx<'_> {
    fn insert_upload(&mut self, upload: &NewUpload) -> StoreResult<()> {
        self.lock_la(upload.meta.la.as_str())?;
        self.conn.execute(
            INSERT_UPLOAD,
            &[
                &upload.id.as_str(),
                &upload.meta.la.as_str(),
                &upload.meta.file_id,
                &upload.meta.mode.code(),
                &upload.meta.file_date,
                &upload.meta.format,
                &upload.meta.channel,
                &upload.content_sha256,
                &ts(upload.received_at),
            ],
        )?;
        Ok(())
    }

    fn find_effective_duplicate(
        &mut self,
        la: &OdsCode,
        file_id: &str,
        content_sha256: &str,
        except: &UploadId,
    ) -> StoreResult<Option<UploadId>> {
        self.lock_la(la.as_str())?;
        let row = self.conn.query_opt(
            "SELECT id FROM uploads
             WHERE effective AND la_ods = $1 AND (file_id = $2 OR content_sha256 = $3) AND id <> $4
             ORDER BY seq LIMIT 1",
            &[&la.as_str(), &file_id, &content_sha256, &except.as_str()],
        )?;
        row.map(|r| {
            UploadId::parse(r.try_get::<_, &str>(0)?).map_err(|_| StoreError::corrupt("upload id"))
        })
        .transpose()
    }

    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<cpis_domain::Demographics>> {
        super::directory::demographics(&mut self.conn, nhs)
    }

    fn demographics_many(
        &mut self,
        nhs: &[NhsNumber],
    ) -> StoreResult<std::collections::HashMap<NhsNumber, cpis_domain::Demographics>> {
        super::directory::demographics_many(&mut self.conn, nhs)
    }

    fn has_record(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        self.lock_la(la.as_str())?;
        self.flush_upserts()?;
        let row = match plan {
            None => self.conn.query_opt(
                "SELECT 1 FROM records WHERE nhs_number = $1 AND la_ods = $2",
                &[&nhs.digits(), &la.as_str()],
            )?,
            Some(p) => self.conn.query_opt(
                "SELECT 1 FROM records r JOIN plans p ON p.record_id = r.id
                 WHERE r.nhs_number = $1 AND r.la_ods = $2 AND p.plan_type = $3",
                &[&nhs.digits(), &la.as_str(), &p.code()],
            )?,
        };
        Ok(row.is_some())
    }

    fn add_row_result(&mut self, upload: &UploadId, result: &RowResult) -> StoreResult<()> {
        let seq = self.seq(upload)?;
        if seq != self.results_seq {
            self.flush_results()?;
            self.results_seq = seq;
        }
        self.results.push(result.clone());
        if self.results.len() >= FLUSH_AT {
            self.flush_results()?;
        }
        Ok(())
    }

    fn claim_held(&mut self, la: &OdsCode, upload: &UploadId) -> StoreResult<HeldClaim> {
        // The LA's lock first: a concurrent confirm or upload of this LA waits here, and what is
        // read after it (read committed) includes everything such a transaction committed.
        self.lock_la(la.as_str())?;
        let status: Option<String> = self
            .conn
            .query_opt(
                "SELECT status FROM uploads WHERE id = $1 AND la_ods = $2",
                &[&upload.as_str(), &la.as_str()],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
        if status.as_deref() != Some(UploadStatus::HeldForConfirmation.code()) {
            return Ok(HeldClaim::NotHeld);
        }
        if applied_since(&mut self.conn, la, upload)? > 0 {
            return Ok(HeldClaim::Stale);
        }
        self.flush_results()?;
        let seq = self.seq(upload)?;
        self.conn
            .execute("DELETE FROM upload_rows WHERE upload_seq = $1", &[&seq])?;
        Ok(HeldClaim::Claimed)
    }

    fn upsert(
        &mut self,
        la: &OdsCode,
        row: &RecordRow,
        upload: &UploadId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.lock_la(la.as_str())?;
        let plan = &row.plan;
        self.upserts.push(PendingUpsert {
            la: la.as_str().to_owned(),
            nhs_number: row.nhs_number.digits(),
            local_id: row.local_id.clone(),
            given_name: row.given_name.clone(),
            family_name: row.family_name.clone(),
            date_of_birth: row.date_of_birth,
            marked: row.sensitive.is_marked(),
            mark_stated: row.sensitive != SensitiveMark::Unstated,
            now: ts(now),
            upload_id: upload.as_str().to_owned(),
            plan_type: plan.plan_type().code(),
            start: plan.start(),
            end: plan.end(),
            expected_delivery: plan.expected_delivery(),
        });
        if self.upserts.len() >= FLUSH_AT {
            self.flush_upserts()?;
        }
        Ok(())
    }

    fn sensitive_marks_removed(&mut self) -> StoreResult<Vec<NhsNumber>> {
        self.flush_upserts()?;
        Ok(std::mem::take(&mut self.unmarked))
    }

    fn delete(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        self.lock_la(la.as_str())?;
        self.flush_upserts()?;
        let digits = nhs.digits();
        let n = match plan {
            None => self.conn.execute(
                "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2",
                &[&digits, &la.as_str()],
            )?,
            Some(p) => {
                let n = self.conn.execute(
                    "DELETE FROM plans WHERE plan_type = $3 AND record_id =
                         (SELECT id FROM records WHERE nhs_number = $1 AND la_ods = $2)",
                    &[&digits, &la.as_str(), &p.code()],
                )?;
                // The deleted plan may have been the record's last marked one.
                let unmarked = self.conn.execute(
                    "UPDATE records SET sensitive = false
                     WHERE nhs_number = $1 AND la_ods = $2 AND sensitive
                       AND EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)
                       AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id AND sensitive)",
                    &[&digits, &la.as_str()],
                )?;
                if unmarked == 1 {
                    self.unmarked.push(nhs);
                }
                self.conn.execute(
                    "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2
                     AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
                    &[&digits, &la.as_str()],
                )?;
                n
            }
        };
        Ok(n > 0)
    }

    fn open_plans(
        &mut self,
        la: &OdsCode,
        as_of: NaiveDate,
    ) -> StoreResult<Vec<(NhsNumber, PlanType)>> {
        self.lock_la(la.as_str())?;
        self.flush_upserts()?;
        let rows = self.conn.query(
            "SELECT r.nhs_number, p.plan_type FROM plans p JOIN records r ON r.id = p.record_id
             WHERE r.la_ods = $1 AND (p.end_date IS NULL OR p.end_date > $2)",
            &[&la.as_str(), &as_of],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_nhs(r.try_get::<_, &str>(0)?)?,
                    r.try_get::<_, &str>(1)?
                        .parse()
                        .map_err(|_| StoreError::corrupt("plan type"))?,
                ))
            })
            .collect()
    }

    fn end_plan(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: PlanType,
        end: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.lock_la(la.as_str())?;
        self.flush_upserts()?;
        // A plan that starts after the file date ends on its start date: never before it.
        self.conn.execute(
            "UPDATE plans SET end_date = greatest($4::date, start_date), updated_at = $5
             WHERE plan_type = $3 AND record_id =
                 (SELECT id FROM records WHERE nhs_number = $1 AND la_ods = $2)",
            &[&nhs.digits(), &la.as_str(), &plan.code(), &end, &ts(now)],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, entry: &cpis_domain::AuditEntry) -> StoreResult<()> {
        super::audit::append(&mut self.conn, &mut self.audit_head, entry)
    }

    fn finish(
        mut self: Box<Self>,
        summary: &UploadSummary,
        held_file: Option<&[u8]>,
    ) -> StoreResult<()> {
        self.flush_upserts()?;
        self.flush_results()?;
        update_summary(&mut self.conn, summary)?;
        if summary.status == UploadStatus::Completed && summary.is_effective() {
            // Applied: every earlier held upload of the LA is now stale for good.
            let params: [&(dyn postgres::types::ToSql + Sync); 2] =
                [&summary.meta.la.as_str(), &summary.id.as_str()];
            self.conn.execute(
                "DELETE FROM held_files WHERE upload_seq IN (
                     SELECT seq FROM uploads
                     WHERE la_ods = $1 AND status = 'held-for-confirmation' AND effective
                       AND seq < (SELECT seq FROM uploads WHERE id = $2))",
                &params,
            )?;
            self.conn.execute(
                "UPDATE uploads SET effective = false
                 WHERE la_ods = $1 AND status = 'held-for-confirmation' AND effective
                   AND seq < (SELECT seq FROM uploads WHERE id = $2)",
                &params,
            )?;
        }
        if let Some(content) = held_file {
            let seq = upload_seq(&mut self.conn, &summary.id)?;
            self.conn.execute(
                "INSERT INTO held_files (upload_seq, content) VALUES ($1, $2)
                 ON CONFLICT (upload_seq) DO UPDATE SET content = excluded.content",
                &[&seq, &content],
            )?;
        } else {
            self.conn.execute(
                "DELETE FROM held_files WHERE upload_seq = (SELECT seq FROM uploads WHERE id = $1)",
                &[&summary.id.as_str()],
            )?;
        }
        let this = &mut *self;
        this.audit_head.store(&mut this.conn)?;
        self.conn.batch("COMMIT")?;
        self.finished = true;
        Ok(())
    }
}

fn outcome_count(s: &UploadSummary, o: RecordOutcome) -> i64 {
    big(s.counts.by_outcome.get(&o).copied().unwrap_or(0))
}

fn update_summary(conn: &mut Conn, s: &UploadSummary) -> StoreResult<()> {
    let n = conn.execute(
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
            &s.completed_at.map(ts),
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
pub fn insert_summary(conn: &mut Conn, s: &UploadSummary) -> StoreResult<()> {
    conn.execute(
        INSERT_UPLOAD,
        &[
            &s.id.as_str(),
            &s.meta.la.as_str(),
            &s.meta.file_id,
            &s.meta.mode.code(),
            &s.meta.file_date,
            &s.meta.format,
            &s.meta.channel,
            &s.content_sha256,
            &ts(s.received_at),
        ],
    )?;
    update_summary(conn, s)
}

const SUMMARY_COLUMNS: &str =
    "id, la_ods, file_id, mode, file_date, format, channel, content_sha256,
    status, file_outcome, message, rows_total, rows_accepted, rows_rejected,
    cpr01, cpr02, cpr03, cpr04, cpr05, cpr06, cpr07, plans_ended, deleted,
    received_at, completed_at, duplicate_of";

fn summary_from_row(r: &Row) -> StoreResult<UploadSummary> {
    let num = |i: usize| -> StoreResult<u64> { Ok(count(r.try_get::<_, i64>(i)?)) };
    let mut counts = UploadCounts {
        rows: num(11)?,
        accepted: num(12)?,
        rejected: num(13)?,
        plans_ended: num(21)?,
        deleted: num(22)?,
        ..Default::default()
    };
    for (i, o) in RecordOutcome::ALL.into_iter().enumerate() {
        let n = num(14 + i)?;
        if n > 0 {
            counts.by_outcome.insert(o, n);
        }
    }
    let id = |s: &str| UploadId::parse(s).map_err(|_| StoreError::corrupt("upload id"));
    Ok(UploadSummary {
        id: id(r.try_get(0)?)?,
        meta: UploadMeta {
            la: parse_ods(r.try_get(1)?)?,
            file_id: r.try_get(2)?,
            mode: r
                .try_get::<_, &str>(3)?
                .parse::<UploadMode>()
                .map_err(|_| StoreError::corrupt("upload mode"))?,
            file_date: r.try_get(4)?,
            format: r.try_get(5)?,
            channel: r.try_get(6)?,
        },
        content_sha256: r.try_get(7)?,
        status: UploadStatus::from_code(r.try_get(8)?)
            .ok_or_else(|| StoreError::corrupt("status"))?,
        file_outcome: r
            .try_get::<_, Option<&str>>(9)?
            .map(|c| FileOutcome::from_code(c).ok_or_else(|| StoreError::corrupt("file outcome")))
            .transpose()?,
        message: r.try_get(10)?,
        counts,
        received_at: r.try_get(23)?,
        completed_at: r.try_get(24)?,
        duplicate_of: r.try_get::<_, Option<&str>>(25)?.map(id).transpose()?,
    })
}

pub fn summary(conn: &mut Conn, la: &OdsCode, id: &UploadId) -> StoreResult<Option<UploadSummary>> {
    conn.query_opt(
        &format!("SELECT {SUMMARY_COLUMNS} FROM uploads WHERE id = $1 AND la_ods = $2"),
        &[&id.as_str(), &la.as_str()],
    )?
    .as_ref()
    .map(summary_from_row)
    .transpose()
}

pub fn recent(conn: &mut Conn, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
    conn.query(
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM uploads WHERE la_ods = $1 ORDER BY seq DESC LIMIT $2"
        ),
        &[&la.as_str(), &i64::from(limit)],
    )?
    .iter()
    .map(summary_from_row)
    .collect()
}

pub fn rows(
    conn: &mut Conn,
    la: &OdsCode,
    id: &UploadId,
    f: &RowFilter,
) -> StoreResult<Vec<RowResult>> {
    let rows = conn.query(
        "SELECT ur.row_no, ur.nhs_number, ur.outcome, ur.detail, ur.message, ur.new_nhs_number
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
    )?;
    rows.iter()
        .map(|r| {
            Ok(RowResult {
                row: count(r.try_get(0)?),
                nhs_number: r.try_get(1)?,
                outcome: RecordOutcome::from_code(r.try_get(2)?)
                    .ok_or_else(|| StoreError::corrupt("outcome"))?,
                detail: r
                    .try_get::<_, Option<&str>>(3)?
                    .map(|d| DetailCode::from_code(d).ok_or_else(|| StoreError::corrupt("detail")))
                    .transpose()?,
                message: r.try_get(4)?,
                new_nhs_number: r
                    .try_get::<_, Option<&str>>(5)?
                    .map(parse_nhs)
                    .transpose()?,
            })
        })
        .collect()
}

pub fn held_file(conn: &mut Conn, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>> {
    Ok(conn
        .query_opt(
            "SELECT h.content FROM held_files h JOIN uploads u ON u.seq = h.upload_seq
             WHERE u.id = $1 AND u.la_ods = $2",
            &[&id.as_str(), &la.as_str()],
        )?
        .map(|r| r.try_get(0))
        .transpose()?)
}

pub fn applied_since(conn: &mut Conn, la: &OdsCode, id: &UploadId) -> StoreResult<u64> {
    Ok(count(
        conn.query_one(
            "SELECT count(*) FROM uploads
             WHERE la_ods = $2 AND status = 'completed' AND effective
               AND seq > (SELECT seq FROM uploads WHERE id = $1 AND la_ods = $2)",
            &[&id.as_str(), &la.as_str()],
        )?
        .try_get(0)?,
    ))
}
