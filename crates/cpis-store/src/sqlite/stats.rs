//! `Store::la_upload_stats` on SQLite: the counts each completed upload stores, and its
//! inactive-number rows counted from the row results.

use super::convert::{parse_ts, ts};
use crate::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::data_quality::UploadOutcomeCounts;
use cpis_domain::report::{UploadId, UploadStatus};
use cpis_domain::{DetailCode, FileOutcome, OdsCode, RecordOutcome};
use rusqlite::{params, Connection};

pub fn la_upload_stats(
    conn: &Connection,
    la: &OdsCode,
    since: DateTime<Utc>,
) -> StoreResult<Vec<UploadOutcomeCounts>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.file_id, u.received_at, u.file_outcome, u.rows_total,
                u.cpr01, u.cpr02, u.cpr03, u.cpr04, u.cpr05, u.cpr06, u.cpr07,
                (SELECT count(*) FROM upload_rows r
                  WHERE r.upload_seq = u.seq AND r.outcome = ?3 AND r.detail = ?4)
           FROM uploads u
          WHERE u.la_ods = ?1 AND u.status = ?2 AND u.received_at >= ?5
          ORDER BY u.seq",
    )?;
    let mut rows = stmt.query(params![
        la.as_str(),
        UploadStatus::Completed.code(),
        RecordOutcome::Invalid.code(),
        DetailCode::NhsNumberInactive.code(),
        ts(since)
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let num = |i: usize| -> StoreResult<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
        let mut by_outcome = std::collections::BTreeMap::new();
        for (i, o) in RecordOutcome::ALL.into_iter().enumerate() {
            let n = num(5 + i)?;
            if n > 0 {
                by_outcome.insert(o, n);
            }
        }
        out.push(UploadOutcomeCounts {
            id: UploadId::parse(&r.get::<_, String>(0)?)
                .map_err(|_| StoreError::corrupt("upload id"))?,
            file_id: r.get(1)?,
            received_at: parse_ts(&r.get::<_, String>(2)?)?,
            file_outcome: r
                .get::<_, Option<String>>(3)?
                .map(|c| {
                    FileOutcome::from_code(&c).ok_or_else(|| StoreError::corrupt("file outcome"))
                })
                .transpose()?,
            rows: num(4)?,
            by_outcome,
            inactive_nhs_numbers: num(12)?,
        });
    }
    Ok(out)
}
