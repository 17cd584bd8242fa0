//! The attendance windows of the children looked up lately, kept in memory (SQLite).
//!
//! A lookup of a child with a visible plan counts the child's unscheduled accesses in the last
//! six months (SPEC rule 10). Read from the database, that is one row per access, each a step
//! into the access table: for a child seen often (a frequent attender, or the same child looked
//! up by the triage nurse, the doctor and the paediatrician of one attendance) it was most of a
//! lookup's work (issue #16: 42% of the lookup writer's time in the benchmark). Here each child
//! looked up lately keeps the time and organisation of its accesses in the window, up to the
//! newest it has read (`through`, a `seq`); a later lookup reads only the accesses after it.
//!
//! This holds because the access table is append-only (nothing updates or deletes an access)
//! and SQLite commits one transaction at a time, so the accesses any snapshot holds are exactly
//! those numbered up to its newest: what a window lacks is what is numbered after its
//! `through`. (PostgreSQL numbers accesses from a sequence and may commit them out of order;
//! it keeps reading the window from the database.) A database whose newest access is older
//! than a window's (a file restored under a running server) drops the window, and one asked
//! for a window reaching further back than it holds (a clock set back) reads it afresh.
//!
//! Bounded: the children used least recently go first once [`CHILDREN`] are held or
//! [`ACCESSES`] accesses in all (about 16 bytes each). Nothing here outlives the process.

use crate::sql::{history, Db};
use crate::StoreResult;
use chrono::{DateTime, Utc};
use cpis_domain::attendance::{self, OrganisationAttendance, Tally};
use cpis_domain::NhsNumber;
use hashlink::LruCache;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// Most children whose windows are held.
const CHILDREN: usize = 100_000;
/// Most accesses held, over every child.
const ACCESSES: usize = 1_000_000;

#[derive(Default)]
pub(super) struct AttendanceCache {
    inner: Mutex<Inner>,
}

struct Inner {
    windows: LruCache<NhsNumber, Window>,
    /// Every (ODS code, name) an access was made under, by number.
    organisations: Organisations,
    /// Accesses held over every window.
    held: usize,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            windows: LruCache::new_unbounded(),
            organisations: Organisations::default(),
            held: 0,
        }
    }
}

/// A child's unscheduled accesses numbered up to `through` made at `from` or later, in the
/// order they were numbered: their times, and organisations (by number).
struct Window {
    through: i64,
    from: DateTime<Utc>,
    seen: Vec<(DateTime<Utc>, u32)>,
}

#[derive(Default)]
struct Organisations {
    named: Vec<(String, String)>,
    numbers: HashMap<(String, String), u32>,
}

impl Organisations {
    fn number(&mut self, ods: String, name: String) -> u32 {
        let key = (ods, name);
        if let Some(n) = self.numbers.get(&key) {
            return *n;
        }
        let n = u32::try_from(self.named.len()).unwrap_or(u32::MAX);
        self.named.push(key.clone());
        self.numbers.insert(key, n);
        n
    }
}

impl AttendanceCache {
    /// The child's attendance in the windows ending `now`, counted from its unscheduled
    /// accesses numbered up to `through` (the newest the snapshot `db` reads holds): what
    /// [`crate::sql::outbox::attendance_by_organisation`] counts, read from the database only
    /// for the accesses the child's window does not hold yet.
    pub(super) fn tally(
        &self,
        db: &mut dyn Db,
        nhs: NhsNumber,
        through: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Tally> {
        let (long, short) = attendance::windows(now);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = inner.windows.remove(&nhs);
        inner.held -= kept.as_ref().map_or(0, |w| w.seen.len());
        // A window is used only if the snapshot holds all it read and it reaches back far enough.
        let mut window = kept
            .filter(|w| w.through <= through && w.from <= long)
            .unwrap_or_else(|| Window::empty(long));
        if through > window.through {
            let read = history::unscheduled_seen(db, nhs, window.through, through, window.from)?;
            for (time, ods, name) in read {
                let org = inner.organisations.number(ods, name);
                window.seen.push((time, org));
            }
            window.through = through;
        }
        window.seen.retain(|(time, _)| *time >= long);
        window.from = long;
        let mut counted: BTreeMap<&str, OrganisationAttendance> = BTreeMap::new();
        for (time, org) in &window.seen {
            if *time > now {
                continue;
            }
            let Some((ods, name)) = inner.organisations.named.get(*org as usize) else {
                continue;
            };
            let seen = counted
                .entry(ods.as_str())
                .or_insert_with(|| OrganisationAttendance {
                    organisation_name: name.clone(),
                    seen_6_months: 0,
                    seen_30_days: 0,
                });
            // The name the database's count gives: the greatest the organisation was seen under.
            if *name > seen.organisation_name {
                seen.organisation_name.clone_from(name);
            }
            seen.seen_6_months += 1;
            if *time >= short {
                seen.seen_30_days += 1;
            }
        }
        let tally = Tally::from_organisations(
            counted
                .into_iter()
                .map(|(ods, seen)| (ods.to_owned(), seen)),
        );
        inner.held += window.seen.len();
        inner.windows.insert(nhs, window);
        while inner.held > ACCESSES || inner.windows.len() > CHILDREN {
            let Some((_, dropped)) = inner.windows.remove_lru() else {
                break;
            };
            inner.held -= dropped.seen.len();
        }
        Ok(tally)
    }
}

impl Window {
    fn empty(from: DateTime<Utc>) -> Self {
        Window {
            through: 0,
            from,
            seen: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::outbox::attendance_by_organisation;
    use crate::sqlite::{connect, SqliteStore};
    use crate::Store;
    use chrono::Duration;
    use cpis_domain::{Access, AccessKind, Accessor, OdsCode, SettingType};

    /// A small deterministic generator (no seed to keep, every run the same).
    struct Steps(u64);

    impl Steps {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn access(n: u64, nhs: NhsNumber, kind: AccessKind, time: DateTime<Utc>, org: u64) -> Access {
        // One organisation seen under two names: the count names it as the database does.
        let (ods, name) = [
            ("RXA01", "Royal Hospital"),
            ("RXB02", "City Urgent Care"),
            ("RXB02", "City Urgent Treatment Centre"),
        ][org as usize % 3];
        Access {
            id: format!("access-{n}"),
            time,
            nhs_number: nhs,
            accessor: Accessor {
                user_id: format!("user-{n}"),
                user_name: "A Clinician".into(),
                role: "Clinician".into(),
                organisation: OdsCode::parse(ods).unwrap(),
                organisation_name: name.into(),
                setting_type: Some(SettingType::EmergencyDepartment),
                nhs: Default::default(),
                organisation_phone: None,
                contact: Default::default(),
            },
            kind,
            trace_id: None,
        }
    }

    /// Accesses written one after another (of several children, some not unscheduled, some
    /// made at times before the window or after `now`), the clock moved on and now and then
    /// back: after every step, each child's attendance counted from its window is the one
    /// counted from the database.
    #[test]
    fn windows_count_what_the_database_counts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        let children: Vec<NhsNumber> = ["9434765919", "9434765870", "9434765862"]
            .iter()
            .map(|n| NhsNumber::parse(n).unwrap())
            .collect();
        let mut steps = Steps(0x2545_f491_4f6c_dd1d);
        let mut now = DateTime::parse_from_rfc3339("2026-06-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut reader = connect(&db).unwrap();
        let mut compared = 0;
        for n in 0..600 {
            let child = children[steps.next(3) as usize];
            match steps.next(10) {
                0 => now += Duration::days(steps.next(60) as i64),
                1 if steps.next(4) == 0 => now -= Duration::days(steps.next(200) as i64),
                _ => {
                    let kind = [AccessKind::Unscheduled, AccessKind::Silent]
                        [steps.next(4).min(1) as usize];
                    let when = now - Duration::hours(steps.next(24 * 240) as i64)
                        + Duration::hours(steps.next(3) as i64 * 12);
                    let mut tx = Store::begin_lookups(&store).unwrap();
                    tx.insert_access(&access(n, child, kind, when, steps.next(3)))
                        .unwrap();
                    tx.commit().unwrap();
                    Store::drain_lookup_spool(&store).unwrap();
                }
            }
            for child in &children {
                let db: &mut dyn Db = &mut reader;
                let through = history::newest_unscheduled(db, *child).unwrap();
                let counted = Tally::from_organisations(
                    attendance_by_organisation(db, *child, now, through).unwrap(),
                );
                let kept = store.attendance.tally(db, *child, through, now).unwrap();
                assert_eq!(kept, counted, "step {n}, child {child:?}, at {now}");
                compared += usize::from(counted != Tally::default());
            }
        }
        assert!(compared > 300, "{compared} non-empty counts compared");
    }
}
