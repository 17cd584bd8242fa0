//! A child's whole access history, read a page at a time (the LA's evidence export,
//! docs/WORKFLOW.md "Evidence export"): oldest first, after a cursor, so a long history is
//! streamed rather than held in memory.

use super::outbox::{access, ACCESS_COLUMNS};
use super::{big, Db};
use crate::StoreResult;
use cpis_domain::{Access, NhsNumber};

/// Up to `limit` unscheduled accesses to the child with a cursor after `after` (0: from the
/// first), oldest first, each with its cursor (the access's `seq`). Served by the
/// `accesses_history` index (NHS number, seq; unscheduled only).
pub fn access_history_page(
    db: &mut dyn Db,
    nhs: NhsNumber,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<(u64, Access)>> {
    db.list(
        &format!(
            "SELECT seq, {ACCESS_COLUMNS}
             FROM accesses WHERE nhs_number = $1 AND kind = 'unscheduled' AND seq > $2
             ORDER BY seq LIMIT $3"
        ),
        &[&nhs.digits(), &big(after), &i64::from(limit)],
        |r| {
            let seq: i64 = r.get(0)?;
            Ok((u64::try_from(seq).unwrap_or_default(), access(r, 1)?))
        },
    )
}
