//! Uploads: the upload transaction, summaries and per-row results.

use super::convert::{date, parse_date, parse_nhs, parse_ods, parse_ts, ts};
use crate::{HeldClaim, NewUpload, RowFilter, StoreError, StoreResult, UploadTx};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::outcome::{DetailCode, FileOutcome, RecordOutcome};
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{RecordRow, SensitiveMark, UploadMode};
use cpis_domain::{NhsNumber, OdsCode, PlanType};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::MutexGuard;

pub struct SqliteUploadTx<'a> {
    conn: MutexGuard<'a, Connection>,
    finished: bool,
    /// The upload's row key, looked up once rather than per result row.
    seq: Option<(UploadId, i64)>,
    audit_head: super::audit::Head,
    /// Records that lost their sensitive mark in this transaction.
    unmarked: Vec<NhsNumber>,
}

impl<'a> SqliteUploadTx<'a> {
    pub fn begin(conn: MutexGuard<'a, Connection>) -> StoreResult<Self> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteUploadTx {
            conn,
            finished: false,
            seq: None,
            audit_head: Default::default(),
            unmarked: Vec::new(),
        })
    }

    fn seq(&mut self, id: &UploadId) -> StoreResult<i64> {
        match &self.seq {
            Some((cached, seq)) if cached == id => Ok(*seq),
            _ => {
                let seq = upload_seq(&self.conn, id)?;
                self.seq = Some((id.clone(), seq));
                Ok(seq)
            }
        }
    }
}

impl Drop for SqliteUploadTx<'_> {
    fn drop(&mut self) {
        if !self.finished && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Held uploads of LA ?1 older than upload ?2 (which was just applied).
const DELETE_STALE_HELD_FILES: &str = "DELETE FROM held_files WHERE upload_seq IN (
     SELECT seq FROM uploads WHERE la_ods = ?1 AND status = 'held-for-confirmation' AND effective = 1
       AND seq < (SELECT seq FROM uploads WHERE id = ?2))";
const RETIRE_STALE_HELD: &str = "UPDATE uploads SET effective = 0
     WHERE la_ods = ?1 AND status = 'held-for-confirmation' AND effective = 1
       AND seq < (SELECT seq FROM uploads WHERE id = ?2)";

/// Clears record ?1's mark when it has no marked plan left; one row changed = the mark went.
const UNMARK_RECORD_WITHOUT_MARKED_PLANS: &str = "UPDATE records SET sensitive = 0
     WHERE id = ?1 AND sensitive = 1
       AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = ?1 AND sensitive = 1)";

const SELECT_UPLOAD_STATUS: &str = "SELECT status FROM uploads WHERE id = ?1 AND la_ods = ?2";

fn upload_seq(conn: &Connection, id: &UploadId) -> StoreResult<i64> {
    conn.prepare_cached("SELECT seq FROM uploads WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::Constraint("no such upload".into()))
}

impl UploadTx for SqliteUploadTx<'_> {
    fn insert_upload(&mut self, upload: &NewUpload) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO uploads (id, la_ods, file_id, mode, file_date, format, channel,
                                      content_sha256, status, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'processing', ?9)",
            )?
            .execute(params![
                upload.id.as_str(),
                upload.meta.la.as_str(),
                upload.meta.file_id,
                upload.meta.mode.code(),
                date(upload.meta.file_date),
                upload.meta.format,
                upload.meta.channel,
                upload.content_sha256,
                ts(upload.received_at)
            ])?;
        Ok(())
    }

    fn find_effective_duplicate(
        &mut self,
        la: &OdsCode,
        file_id: &str,
        content_sha256: &str,
        except: &UploadId,
    ) -> StoreResult<Option<UploadId>> {
        let id: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT id FROM uploads
                 WHERE effective = 1 AND la_ods = ?1 AND (file_id = ?2 OR content_sha256 = ?3) AND id <> ?4
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![la.as_str(), file_id, content_sha256, except.as_str()], |r| r.get(0))
            .optional()?;
        id.map(|s| UploadId::parse(&s).map_err(|_| StoreError::corrupt("upload id")))
            .transpose()
    }

    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<cpis_domain::Demographics>> {
        super::directory::demographics(&self.conn, nhs)
    }

    fn has_record(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        let found = match plan {
            None => self
                .conn
                .prepare_cached("SELECT 1 FROM records WHERE nhs_number = ?1 AND la_ods = ?2")?
                .exists(params![nhs.digits(), la.as_str()])?,
            Some(p) => self
                .conn
                .prepare_cached(
                    "SELECT 1 FROM records r JOIN plans p ON p.record_id = r.id
                     WHERE r.nhs_number = ?1 AND r.la_ods = ?2 AND p.plan_type = ?3",
                )?
                .exists(params![nhs.digits(), la.as_str(), p.code()])?,
        };
        Ok(found)
    }

    fn add_row_result(&mut self, upload: &UploadId, result: &RowResult) -> StoreResult<()> {
        let seq = self.seq(upload)?;
        self.conn
            .prepare_cached(
                "INSERT INTO upload_rows (upload_seq, row_no, nhs_number, outcome, detail, message, new_nhs_number)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                seq,
                result.row as i64,
                result.nhs_number,
                result.outcome.code(),
                result.detail.map(|d| d.code()),
                result.message,
                result.new_nhs_number.map(|n| n.digits())
            ])?;
        Ok(())
    }

    fn claim_held(&mut self, la: &OdsCode, upload: &UploadId) -> StoreResult<HeldClaim> {
        // BEGIN IMMEDIATE already holds the write lock: what is read here cannot change before
        // this transaction commits.
        let status: Option<String> = self
            .conn
            .prepare_cached(SELECT_UPLOAD_STATUS)?
            .query_row(params![upload.as_str(), la.as_str()], |r| r.get(0))
            .optional()?;
        if status.as_deref() != Some(UploadStatus::HeldForConfirmation.code()) {
            return Ok(HeldClaim::NotHeld);
        }
        if applied_since(&self.conn, la, upload)? > 0 {
            return Ok(HeldClaim::Stale);
        }
        let seq = self.seq(upload)?;
        self.conn
            .prepare_cached("DELETE FROM upload_rows WHERE upload_seq = ?1")?
            .execute([seq])?;
        Ok(HeldClaim::Claimed)
    }

    fn upsert(
        &mut self,
        la: &OdsCode,
        row: &RecordRow,
        upload: &UploadId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let now = ts(now);
        let marked = row.sensitive.is_marked();
        // The record's mark is not overwritten by one row: it follows its plans' marks (below).
        let (record_id, was_marked): (i64, bool) = self
            .conn
            .prepare_cached(
                "INSERT INTO records (nhs_number, la_ods, local_id, given_name, family_name, date_of_birth,
                                      sensitive, created_at, updated_at, last_upload_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)
                 ON CONFLICT (nhs_number, la_ods) DO UPDATE SET
                     local_id = excluded.local_id, given_name = excluded.given_name,
                     family_name = excluded.family_name, date_of_birth = excluded.date_of_birth,
                     updated_at = excluded.updated_at, last_upload_id = excluded.last_upload_id
                 RETURNING id, sensitive",
            )?
            .query_row(
                params![
                    row.nhs_number.digits(),
                    la.as_str(),
                    row.local_id,
                    row.given_name,
                    row.family_name,
                    date(row.date_of_birth),
                    marked,
                    now,
                    upload.as_str()
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
        let plan = &row.plan;
        let stated = row.sensitive != SensitiveMark::Unstated;
        self.conn
            .prepare_cached(
                "INSERT INTO plans (record_id, plan_type, start_date, end_date, expected_delivery_date,
                                    sensitive, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (record_id, plan_type) DO UPDATE SET
                     start_date = excluded.start_date, end_date = excluded.end_date,
                     expected_delivery_date = excluded.expected_delivery_date,
                     sensitive = CASE WHEN ?8 THEN excluded.sensitive ELSE plans.sensitive END,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![
                record_id,
                plan.plan_type().code(),
                date(plan.start()),
                plan.end().map(date),
                plan.expected_delivery().map(date),
                marked,
                now,
                stated
            ])?;
        if marked && !was_marked {
            self.conn
                .prepare_cached("UPDATE records SET sensitive = 1 WHERE id = ?1")?
                .execute([record_id])?;
        } else if row.sensitive == SensitiveMark::Unmarked
            && was_marked
            && self
                .conn
                .prepare_cached(UNMARK_RECORD_WITHOUT_MARKED_PLANS)?
                .execute([record_id])?
                == 1
        {
            self.unmarked.push(row.nhs_number);
        }
        Ok(())
    }

    fn sensitive_marks_removed(&mut self) -> StoreResult<Vec<NhsNumber>> {
        Ok(std::mem::take(&mut self.unmarked))
    }

    fn delete(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        let n = match plan {
            None => self
                .conn
                .prepare_cached("DELETE FROM records WHERE nhs_number = ?1 AND la_ods = ?2")?
                .execute(params![nhs.digits(), la.as_str()])?,
            Some(p) => {
                let n = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM plans WHERE plan_type = ?3 AND record_id =
                             (SELECT id FROM records WHERE nhs_number = ?1 AND la_ods = ?2)",
                    )?
                    .execute(params![nhs.digits(), la.as_str(), p.code()])?;
                // The deleted plan may have been the record's last marked one.
                let record: Option<i64> = self
                    .conn
                    .prepare_cached("SELECT id FROM records WHERE nhs_number = ?1 AND la_ods = ?2")?
                    .query_row(params![nhs.digits(), la.as_str()], |r| r.get(0))
                    .optional()?;
                if let Some(id) = record {
                    let plans_left: bool = self
                        .conn
                        .prepare_cached("SELECT EXISTS (SELECT 1 FROM plans WHERE record_id = ?1)")?
                        .query_row([id], |r| r.get(0))?;
                    if plans_left
                        && self
                            .conn
                            .prepare_cached(UNMARK_RECORD_WITHOUT_MARKED_PLANS)?
                            .execute([id])?
                            == 1
                    {
                        self.unmarked.push(nhs);
                    }
                }
                self.conn
                    .prepare_cached(
                        "DELETE FROM records WHERE nhs_number = ?1 AND la_ods = ?2
                         AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
                    )?
                    .execute(params![nhs.digits(), la.as_str()])?;
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.nhs_number, p.plan_type FROM plans p JOIN records r ON r.id = p.record_id
             WHERE r.la_ods = ?1 AND (p.end_date IS NULL OR p.end_date > ?2)",
        )?;
        let rows = stmt.query_map(params![la.as_str(), date(as_of)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (nhs, plan) = r?;
            Ok((
                parse_nhs(&nhs)?,
                plan.parse().map_err(|_| StoreError::corrupt("plan type"))?,
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
        // A plan that starts after the file date ends on its start date: never before it.
        self.conn
            .prepare_cached(
                "UPDATE plans SET end_date = max(?4, start_date), updated_at = ?5
                 WHERE plan_type = ?3 AND record_id =
                     (SELECT id FROM records WHERE nhs_number = ?1 AND la_ods = ?2)",
            )?
            .execute(params![
                nhs.digits(),
                la.as_str(),
                plan.code(),
                date(end),
                ts(now)
            ])?;
        Ok(())
    }

    fn append_audit(&mut self, entry: &cpis_domain::AuditEntry) -> StoreResult<()> {
        super::audit::append(&self.conn, &mut self.audit_head, entry)
    }

    fn finish(
        mut self: Box<Self>,
        summary: &UploadSummary,
        held_file: Option<&[u8]>,
    ) -> StoreResult<()> {
        update_summary(&self.conn, summary)?;
        if summary.status == UploadStatus::Completed && summary.is_effective() {
            // Applied: every earlier held upload of the LA is now stale for good.
            let params = params![summary.meta.la.as_str(), summary.id.as_str()];
            self.conn
                .prepare_cached(DELETE_STALE_HELD_FILES)?
                .execute(params)?;
            self.conn
                .prepare_cached(RETIRE_STALE_HELD)?
                .execute(params)?;
        }
        if let Some(content) = held_file {
            let seq = upload_seq(&self.conn, &summary.id)?;
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO held_files (upload_seq, content) VALUES (?1, ?2)",
                )?
                .execute(params![seq, content])?;
        } else {
            self.conn
                .prepare_cached(
                    "DELETE FROM held_files WHERE upload_seq = (SELECT seq FROM uploads WHERE id = ?1)",
                )?
                .execute([summary.id.as_str()])?;
        }
        self.audit_head.store(&self.conn)?;
        self.conn.execute_batch("COMMIT")?;
        self.finished = true;
        Ok(())
    }
}

fn count(s: &UploadSummary, o: RecordOutcome) -> i64 {
    s.counts.by_outcome.get(&o).copied().unwrap_or(0) as i64
}

fn update_summary(conn: &Connection, s: &UploadSummary) -> StoreResult<()> {
    let n = conn
        .prepare_cached(
            "UPDATE uploads SET status = ?2, effective = ?3, file_outcome = ?4, message = ?5,
                 rows_total = ?6, rows_accepted = ?7, rows_rejected = ?8,
                 cpr01 = ?9, cpr02 = ?10, cpr03 = ?11, cpr04 = ?12, cpr05 = ?13, cpr06 = ?14, cpr07 = ?15,
                 plans_ended = ?16, deleted = ?17, completed_at = ?18, duplicate_of = ?19
             WHERE id = ?1",
        )?
        .execute(params![
            s.id.as_str(),
            s.status.code(),
            s.is_effective(),
            s.file_outcome.map(|o| o.code()),
            s.message,
            s.counts.rows as i64,
            s.counts.accepted as i64,
            s.counts.rejected as i64,
            count(s, RecordOutcome::NotFound),
            count(s, RecordOutcome::Sensitive),
            count(s, RecordOutcome::DobMismatch),
            count(s, RecordOutcome::MalformedNhsNumber),
            count(s, RecordOutcome::Superseded),
            count(s, RecordOutcome::Accepted),
            count(s, RecordOutcome::Invalid),
            s.counts.plans_ended as i64,
            s.counts.deleted as i64,
            s.completed_at.map(ts),
            s.duplicate_of.as_ref().map(|d| d.as_str().to_owned())
        ])?;
    if n != 1 {
        return Err(StoreError::Constraint("no such upload".into()));
    }
    Ok(())
}

/// Inserts a whole summary (an upload refused before any row was read).
pub fn insert_summary(conn: &mut Connection, s: &UploadSummary) -> StoreResult<()> {
    let tx = conn.transaction()?;
    SqliteUploadTx::insert_new(&tx, s)?;
    update_summary(&tx, s)?;
    tx.commit()?;
    Ok(())
}

impl SqliteUploadTx<'_> {
    fn insert_new(conn: &Connection, s: &UploadSummary) -> StoreResult<()> {
        conn.prepare_cached(
            "INSERT INTO uploads (id, la_ods, file_id, mode, file_date, format, channel,
                                  content_sha256, status, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'processing', ?9)",
        )?
        .execute(params![
            s.id.as_str(),
            s.meta.la.as_str(),
            s.meta.file_id,
            s.meta.mode.code(),
            date(s.meta.file_date),
            s.meta.format,
            s.meta.channel,
            s.content_sha256,
            ts(s.received_at)
        ])?;
        Ok(())
    }
}

const SUMMARY_COLUMNS: &str =
    "id, la_ods, file_id, mode, file_date, format, channel, content_sha256,
    status, file_outcome, message, rows_total, rows_accepted, rows_rejected,
    cpr01, cpr02, cpr03, cpr04, cpr05, cpr06, cpr07, plans_ended, deleted,
    received_at, completed_at, duplicate_of";

fn summary_from_row(r: &Row<'_>) -> StoreResult<UploadSummary> {
    let text = |i: usize| -> StoreResult<String> { Ok(r.get::<_, String>(i)?) };
    let opt = |i: usize| -> StoreResult<Option<String>> { Ok(r.get::<_, Option<String>>(i)?) };
    let num = |i: usize| -> StoreResult<u64> { Ok(r.get::<_, i64>(i)? as u64) };
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
        id: id(&text(0)?)?,
        meta: UploadMeta {
            la: parse_ods(&text(1)?)?,
            file_id: text(2)?,
            mode: text(3)?
                .parse::<UploadMode>()
                .map_err(|_| StoreError::corrupt("upload mode"))?,
            file_date: parse_date(&text(4)?)?,
            format: text(5)?,
            channel: text(6)?,
        },
        content_sha256: text(7)?,
        status: UploadStatus::from_code(&text(8)?).ok_or_else(|| StoreError::corrupt("status"))?,
        file_outcome: opt(9)?
            .map(|c| FileOutcome::from_code(&c).ok_or_else(|| StoreError::corrupt("file outcome")))
            .transpose()?,
        message: opt(10)?,
        counts,
        received_at: parse_ts(&text(23)?)?,
        completed_at: opt(24)?.as_deref().map(parse_ts).transpose()?,
        duplicate_of: opt(25)?.as_deref().map(id).transpose()?,
    })
}

pub fn summary(
    conn: &Connection,
    la: &OdsCode,
    id: &UploadId,
) -> StoreResult<Option<UploadSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM uploads WHERE id = ?1 AND la_ods = ?2"
    ))?;
    let mut rows = stmt.query(params![id.as_str(), la.as_str()])?;
    match rows.next()? {
        Some(r) => Ok(Some(summary_from_row(r)?)),
        None => Ok(None),
    }
}

pub fn recent(conn: &Connection, la: &OdsCode, limit: u32) -> StoreResult<Vec<UploadSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM uploads WHERE la_ods = ?1 ORDER BY seq DESC LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![la.as_str(), i64::from(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(summary_from_row(r)?);
    }
    Ok(out)
}

pub fn rows(
    conn: &Connection,
    la: &OdsCode,
    id: &UploadId,
    f: &RowFilter,
) -> StoreResult<Vec<RowResult>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ur.row_no, ur.nhs_number, ur.outcome, ur.detail, ur.message, ur.new_nhs_number
         FROM upload_rows ur JOIN uploads u ON u.seq = ur.upload_seq
         WHERE u.id = ?1 AND u.la_ods = ?2 AND ur.row_no > ?3 AND (?4 IS NULL OR ur.outcome = ?4)
         ORDER BY ur.row_no LIMIT ?5",
    )?;
    let mut rows = stmt.query(params![
        id.as_str(),
        la.as_str(),
        f.after_row as i64,
        f.outcome.map(|o| o.code()),
        i64::from(f.limit)
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let outcome: String = r.get(2)?;
        let detail: Option<String> = r.get(3)?;
        let new_nhs: Option<String> = r.get(5)?;
        out.push(RowResult {
            row: r.get::<_, i64>(0)? as u64,
            nhs_number: r.get(1)?,
            outcome: RecordOutcome::from_code(&outcome)
                .ok_or_else(|| StoreError::corrupt("outcome"))?,
            detail: detail
                .map(|d| DetailCode::from_code(&d).ok_or_else(|| StoreError::corrupt("detail")))
                .transpose()?,
            message: r.get(4)?,
            new_nhs_number: new_nhs.as_deref().map(parse_nhs).transpose()?,
        });
    }
    Ok(out)
}

pub fn held_file(conn: &Connection, la: &OdsCode, id: &UploadId) -> StoreResult<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(
            "SELECT h.content FROM held_files h JOIN uploads u ON u.seq = h.upload_seq
             WHERE u.id = ?1 AND u.la_ods = ?2",
        )?
        .query_row(params![id.as_str(), la.as_str()], |r| r.get(0))
        .optional()?)
}

pub fn applied_since(conn: &Connection, la: &OdsCode, id: &UploadId) -> StoreResult<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM uploads
             WHERE la_ods = ?2 AND status = 'completed' AND effective = 1
               AND seq > (SELECT seq FROM uploads WHERE id = ?1 AND la_ods = ?2)",
        )?
        .query_row(params![id.as_str(), la.as_str()], |r| r.get::<_, i64>(0))? as u64)
}
