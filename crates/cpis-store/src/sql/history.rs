//! A child's access history: what a lookup reads before it writes ([`lookup_view`], then
//! [`unscheduled_after`] inside its write transaction), and the whole history read a page at a
//! time (the LA's evidence export, docs/WORKFLOW.md "Evidence export"): oldest first, after a
//! cursor, so a long history is streamed rather than held in memory.

use super::outbox::{access, attendance_by_organisation, recent_accesses_with_seq, ACCESS_COLUMNS};
use super::{big, directory, records, Db};
use crate::{LookupView, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::attendance::Tally;
use cpis_domain::{Access, NhsNumber};

/// What a lookup of `nhs` reads before its write transaction, outside it (on a reader, while the
/// lookups thread writes other lookups): the child's records with their LAs' directory entries
/// and, only when there are records, the `history` most recent unscheduled accesses and the
/// attendance counted from the accesses up to the newest of them (`through`). Accesses after
/// `through` are the write transaction's to add ([`unscheduled_after`]), so none is missed or
/// counted twice whatever commits between the two.
pub fn lookup_view(
    db: &mut dyn Db,
    nhs: NhsNumber,
    history: usize,
    now: DateTime<Utc>,
) -> StoreResult<LookupView> {
    let records = records::records_for(db, nhs)?;
    if records.is_empty() {
        return Ok(LookupView::default());
    }
    let mut local_authorities = Vec::with_capacity(records.len());
    for r in &records {
        local_authorities.extend(directory::local_authority(db, &r.la)?);
    }
    let newest = recent_accesses_with_seq(db, nhs, history)?;
    let through = newest.first().map_or(0, |(seq, _)| *seq);
    let attendance = Tally::from_organisations(attendance_by_organisation(db, nhs, now, through)?);
    Ok(LookupView {
        records,
        local_authorities,
        history: newest.into_iter().map(|(_, a)| a).collect(),
        attendance,
        through,
    })
}

/// The child's unscheduled accesses after `through` (a [`LookupView`]'s), oldest first: in a
/// lookup's write transaction, those committed since its view was read and its group's own.
pub fn unscheduled_after(
    db: &mut dyn Db,
    nhs: NhsNumber,
    through: i64,
) -> StoreResult<Vec<Access>> {
    db.list(
        &format!(
            "SELECT {ACCESS_COLUMNS} FROM accesses
             WHERE nhs_number = $1 AND kind = 'unscheduled' AND seq > $2 ORDER BY seq"
        ),
        &[&nhs.digits(), &through],
        |r| access(r, 0),
    )
}

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
