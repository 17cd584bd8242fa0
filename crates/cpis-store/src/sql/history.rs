//! A child's access history: what a lookup reads before it writes ([`lookup_view`], then
//! [`unscheduled_after`] inside its write transaction), and the whole history read a page at a
//! time (the LA's evidence export, docs/WORKFLOW.md "Evidence export"): oldest first, after a
//! cursor, so a long history is streamed rather than held in memory.

use super::outbox::{
    access, attendance_by_organisation, attendance_columns, recent_accesses_with_seq,
    ACCESS_COLUMNS, ATTENDANCE_COLUMNS,
};
use super::{big, directory, records, Db};
use crate::{LookupView, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::attendance::{self, OrganisationAttendance, Tally};
use cpis_domain::{Access, NhsNumber};
use std::collections::HashMap;

/// What a lookup of `nhs` reads before its write transaction, outside it (on a reader, while the
/// lookups thread writes other lookups): the child's records with their LAs' directory entries
/// and, only when there are records, the `history` most recent unscheduled accesses and the
/// attendance counted from the accesses up to the newest of them (`through`). Accesses after
/// `through` are the write transaction's to add ([`unscheduled_after`]), so none is missed or
/// counted twice whatever commits between the two. With `history` 0 (a lookup that shows no
/// history, as the FHIR API's) only the newest access's `seq` is read, from the index.
pub fn lookup_view(
    db: &mut dyn Db,
    nhs: NhsNumber,
    history: usize,
    now: DateTime<Utc>,
) -> StoreResult<LookupView> {
    lookup_view_counted(db, nhs, history, |db, through| {
        let seen = attendance_by_organisation(db, nhs, now, through)?;
        Ok(Tally::from_organisations(seen))
    })
}

/// [`lookup_view`], its attendance counted by `count` from the accesses up to `through` (a
/// `seq`): SQLite counts it from the windows it keeps (`sqlite/attendance_cache.rs`).
pub(crate) fn lookup_view_counted(
    db: &mut dyn Db,
    nhs: NhsNumber,
    history: usize,
    count: impl FnOnce(&mut dyn Db, i64) -> StoreResult<Tally>,
) -> StoreResult<LookupView> {
    let records = records::records_for(db, nhs)?;
    if records.is_empty() {
        return Ok(LookupView::default());
    }
    let mut local_authorities = Vec::with_capacity(records.len());
    for r in &records {
        local_authorities.extend(directory::local_authority(db, &r.la)?);
    }
    let (through, newest) = if history == 0 {
        (newest_unscheduled(db, nhs)?, Vec::new())
    } else {
        let newest = recent_accesses_with_seq(db, nhs, history)?;
        (newest.first().map_or(0, |(seq, _)| *seq), newest)
    };
    let attendance = count(db, through)?;
    Ok(LookupView {
        records,
        local_authorities,
        history: newest.into_iter().map(|(_, a)| a).collect(),
        attendance,
        through,
    })
}

/// [`lookup_view`] of each child in `nhs`, in one snapshot and in the same order (a child named
/// twice gets the same view twice). On PostgreSQL four statements read them all (the records,
/// their LAs, each child's newest accesses, their attendance; each child through its own index
/// walk), where one view at a time costs four each and a round trip apiece; SQLite, in-process,
/// reads one view after another.
///
/// In one snapshot a child's `through` is its newest visible unscheduled access, so counting
/// every visible access of the child in the attendance counts exactly those up to `through`.
pub fn lookup_views(
    db: &mut dyn Db,
    nhs: &[NhsNumber],
    history: usize,
    now: DateTime<Utc>,
) -> StoreResult<Vec<LookupView>> {
    if db.postgres().is_none() {
        return nhs
            .iter()
            .map(|n| lookup_view(db, *n, history, now))
            .collect();
    }
    let mut children: Vec<String> = nhs.iter().map(|n| n.digits()).collect();
    children.sort_unstable();
    children.dedup();
    let mut records = records::records_for_many(db, &children)?;
    let held: Vec<String> = records.keys().map(|n| n.digits()).collect();
    if held.is_empty() {
        return Ok(vec![LookupView::default(); nhs.len()]);
    }
    let mut las: Vec<String> = (records.values().flatten())
        .map(|r| r.la.as_str().to_owned())
        .collect();
    las.sort_unstable();
    las.dedup();
    let directory = directory::local_authorities_in(db, &las)?;
    // One access at least: its `seq` is the view's `through`.
    let mut newest = recent_accesses_many(db, &held, history.max(1))?;
    let mut attendance = attendance_many(db, &held, now)?;
    let mut views = HashMap::with_capacity(records.len());
    for (child, records) in records.drain() {
        let local_authorities = (records.iter())
            .filter_map(|r| directory.get(r.la.as_str()).cloned())
            .collect();
        let newest = newest.remove(&child).unwrap_or_default();
        views.insert(
            child,
            LookupView {
                records,
                local_authorities,
                through: newest.first().map_or(0, |(seq, _)| *seq),
                history: newest.into_iter().take(history).map(|(_, a)| a).collect(),
                attendance: Tally::from_organisations(
                    attendance.remove(&child).unwrap_or_default(),
                ),
            },
        );
    }
    Ok(nhs
        .iter()
        .map(|n| views.get(n).cloned().unwrap_or_default())
        .collect())
}

/// The time, organisation (ODS code) and organisation name of the child's unscheduled accesses
/// numbered after `after` up to `through`, made at `from` or later, in the order they were
/// numbered: what an attendance count reads of them.
pub(crate) fn unscheduled_seen(
    db: &mut dyn Db,
    nhs: NhsNumber,
    after: i64,
    through: i64,
    from: DateTime<Utc>,
) -> StoreResult<Vec<(DateTime<Utc>, String, String)>> {
    db.list(
        "SELECT time, org_ods, org_name FROM accesses
         WHERE nhs_number = $1 AND kind = 'unscheduled' AND seq > $2 AND seq <= $3 AND time >= $4
         ORDER BY seq",
        &[&nhs.digits(), &after, &through, &from],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The `seq` of the child's newest unscheduled access (0: none), from the history index alone.
pub(crate) fn newest_unscheduled(db: &mut dyn Db, nhs: NhsNumber) -> StoreResult<i64> {
    let seq = db.find(
        "SELECT seq FROM accesses WHERE nhs_number = $1 AND kind = 'unscheduled'
         ORDER BY seq DESC LIMIT 1",
        &[&nhs.digits()],
        |r| r.get::<i64>(0),
    )?;
    Ok(seq.unwrap_or(0))
}

/// The `limit` most recent unscheduled accesses of each child (`children`: distinct), newest
/// first, each with its `seq` (PostgreSQL: one index walk per child in one statement).
fn recent_accesses_many(
    db: &mut dyn Db,
    children: &[String],
    limit: usize,
) -> StoreResult<HashMap<NhsNumber, Vec<(i64, Access)>>> {
    let rows = db.list(
        &format!(
            "SELECT a.* FROM unnest($1::text[]) AS c(nhs)
             CROSS JOIN LATERAL (
                 SELECT seq, {ACCESS_COLUMNS} FROM accesses
                 WHERE nhs_number = c.nhs AND kind = 'unscheduled' ORDER BY seq DESC LIMIT {}
             ) a
             ORDER BY a.nhs_number, a.seq DESC",
            big(limit as u64)
        ),
        &[&children.to_vec()],
        |r| Ok((r.get::<i64>(0)?, access(r, 1)?)),
    )?;
    let mut out: HashMap<NhsNumber, Vec<(i64, Access)>> = HashMap::new();
    for (seq, a) in rows {
        out.entry(a.nhs_number).or_default().push((seq, a));
    }
    Ok(out)
}

/// Each child's attendance in the windows ending `now`, per organisation (PostgreSQL), as
/// [`attendance_by_organisation`] counts one child's: a lateral walk of the access-history index
/// per child, as [`records::records_for_many`] reads records.
fn attendance_many(
    db: &mut dyn Db,
    children: &[String],
    now: DateTime<Utc>,
) -> StoreResult<HashMap<NhsNumber, Vec<(String, OrganisationAttendance)>>> {
    let (long, short) = attendance::windows(now);
    let rows = db.list(
        &format!(
            "SELECT a.* FROM unnest($1::text[]) AS c(nhs) CROSS JOIN LATERAL (
                 SELECT nhs_number, {ATTENDANCE_COLUMNS} FROM accesses
                 WHERE nhs_number = c.nhs AND kind = 'unscheduled' AND time >= $2 AND time <= $4
                 GROUP BY nhs_number, org_ods
             ) a"
        ),
        &[&children.to_vec(), &long, &short, &now],
        |r| Ok((r.get::<NhsNumber>(0)?, attendance_columns(r, 1)?)),
    )?;
    let mut out: HashMap<NhsNumber, Vec<(String, OrganisationAttendance)>> = HashMap::new();
    for (child, seen) in rows {
        out.entry(child).or_default().push(seen);
    }
    Ok(out)
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

/// [`unscheduled_after`] of each (child, `through`) (PostgreSQL only: one statement), by both.
/// `OFFSET 0` keeps the lateral subquery a walk of the `accesses_history` index per child: without
/// it the planner joins the pairs to every access (measured: a lookup group several times slower).
pub fn unscheduled_after_many(
    db: &mut dyn Db,
    children: &[(NhsNumber, i64)],
) -> StoreResult<HashMap<(NhsNumber, i64), Vec<Access>>> {
    let mut out: HashMap<(NhsNumber, i64), Vec<Access>> =
        children.iter().map(|c| (*c, Vec::new())).collect();
    let (nhs, through): (Vec<String>, Vec<i64>) = out.keys().map(|(n, t)| (n.digits(), *t)).unzip();
    let rows = db.list(
        &format!(
            "SELECT c.through, a.* FROM unnest($1::text[], $2::int8[]) AS c(nhs, through)
             CROSS JOIN LATERAL (
                 SELECT seq, {ACCESS_COLUMNS} FROM accesses
                 WHERE nhs_number = c.nhs AND kind = 'unscheduled' AND seq > c.through
                 OFFSET 0
             ) a
             ORDER BY a.nhs_number, c.through, a.seq"
        ),
        &[&nhs, &through],
        |r| Ok((r.get::<i64>(0)?, access(r, 2)?)),
    )?;
    for (through, a) in rows {
        out.entry((a.nhs_number, through)).or_default().push(a);
    }
    Ok(out)
}

/// Up to `limit` unscheduled accesses to the child with a cursor after `after` (0: from the
/// first), oldest first, each with its cursor (the access's `seq`). Served by the
/// `accesses_history` index (the child, in `seq` order; unscheduled only).
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
