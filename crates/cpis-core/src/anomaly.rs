//! Lookup anomaly detection (SPEC 4): an identity or an organisation whose lookups look like
//! enumeration of the register is throttled (429 with `Retry-After`) and reported to admins, once
//! per episode. The rules (docs/SECURITY.md), each configurable under `[anomaly]`:
//!
//! - **rate**: more than `max_per_minute` lookups by one identity in 60 seconds;
//! - **distinct children**: more than `max_distinct_children` different NHS numbers looked up by
//!   one identity in `distinct_window_minutes` (a walk that repeats a known child in between
//!   still counts every new number);
//! - **sequential numbers**: of one identity's last `sequential_window` lookups, at least
//!   `sequential_run - 1` were of a new number within `sequential_gap` of a number looked up
//!   earlier in the window (interleaving a known child does not break the run);
//! - **misses**: once an identity has made `miss_window` lookups, more than `max_miss_ratio` of
//!   the different numbers among them found nothing (repeating one known child does not dilute
//!   the ratio);
//! - **organisation volume**: more than `org_max_lookups` lookups from one organisation (ODS
//!   code) in `org_window_minutes`; the whole organisation is then paused.
//!
//! CareTeam searches and AuditEvent (history) searches count alike: a non-empty history answer
//! reveals as much as a flag.

use chrono::{DateTime, Duration, Utc};
use cpis_domain::NhsNumber;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyPolicy {
    /// Most lookups per identity in any 60 seconds.
    pub max_per_minute: usize,
    /// Most different NHS numbers one identity may look up in `distinct_window_minutes`.
    pub max_distinct_children: usize,
    pub distinct_window_minutes: i64,
    /// This many lookups of new numbers, each within `sequential_gap` of a number looked up
    /// earlier among the identity's last `sequential_window` lookups, look like enumeration.
    pub sequential_run: usize,
    pub sequential_gap: u64,
    pub sequential_window: usize,
    /// Of the last `miss_window` lookups (once there are that many), more than this share of the
    /// different numbers finding nothing looks like fishing.
    pub miss_window: usize,
    pub max_miss_ratio: f64,
    /// Most lookups from one organisation in `org_window_minutes`.
    pub org_max_lookups: usize,
    pub org_window_minutes: i64,
    /// How long a flagged identity (or organisation) is refused.
    pub throttle_minutes: i64,
}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        AnomalyPolicy {
            max_per_minute: 120,
            max_distinct_children: 30,
            distinct_window_minutes: 10,
            sequential_run: 10,
            sequential_gap: 100,
            sequential_window: 30,
            miss_window: 40,
            max_miss_ratio: 0.8,
            org_max_lookups: 1_000,
            org_window_minutes: 60,
            throttle_minutes: 15,
        }
    }
}

/// Why an identity or organisation was flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    Rate { per_minute: usize },
    Distinct { children: usize, minutes: i64 },
    Sequential { run: usize },
    Misses { misses: usize, of: usize },
    Organisation { lookups: usize, minutes: i64 },
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::Rate { per_minute } => write!(f, "lookup rate over {per_minute} per minute"),
            Anomaly::Distinct { children, minutes } => write!(
                f,
                "{children} different children looked up in {minutes} minutes"
            ),
            Anomaly::Sequential { run } => write!(f, "{run} lookups of sequential NHS numbers"),
            Anomaly::Misses { misses, of } => {
                write!(f, "{misses} of the last {of} children looked up found nothing")
            }
            Anomaly::Organisation { lookups, minutes } => write!(
                f,
                "organisation volume: over {lookups} lookups in {minutes} minutes; the organisation's lookups are paused"
            ),
        }
    }
}

/// One lookup as the detector remembers it.
struct Seen {
    nhs: u64,
    found: bool,
    /// A new number near one looked up earlier in the window.
    near: bool,
}

#[derive(Default)]
struct Track {
    recent: VecDeque<DateTime<Utc>>,
    /// The last lookups the count-based rules (sequential numbers, misses) look at.
    seen: VecDeque<Seen>,
    /// The lookups in the distinct-children window, oldest first, and how many of them are of
    /// each child: the number of different children without walking the window at every lookup.
    window: VecDeque<(DateTime<Utc>, u64)>,
    children: HashMap<u64, u32>,
    throttled_until: Option<DateTime<Utc>>,
}

impl Track {
    /// Adds a lookup of `nhs` at `now` to the distinct-children window, which starts at `since`.
    fn count_child(&mut self, nhs: u64, now: DateTime<Utc>, since: DateTime<Utc>) {
        self.window.push_back((now, nhs));
        *self.children.entry(nhs).or_default() += 1;
        while let Some(&(at, old)) = self.window.front() {
            if at >= since {
                break;
            }
            self.window.pop_front();
            if let Some(n) = self.children.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.children.remove(&old);
                }
            }
        }
    }

    /// Forgets the identity's pattern (after flagging it).
    fn forget(&mut self) {
        self.seen.clear();
        self.window.clear();
        self.children.clear();
    }
}

#[derive(Default)]
struct OrgTrack {
    lookups: VecDeque<DateTime<Utc>>,
    throttled_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Tracks {
    identities: HashMap<String, Track>,
    organisations: HashMap<String, OrgTrack>,
}

#[derive(Default)]
pub struct AnomalyDetector {
    policy: AnomalyPolicy,
    tracks: Mutex<Tracks>,
}

/// The identity (or its organisation) is throttled until this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub DateTime<Utc>);

impl AnomalyDetector {
    pub fn new(policy: AnomalyPolicy) -> Self {
        AnomalyDetector {
            policy,
            tracks: Mutex::new(Tracks::default()),
        }
    }

    /// Before a lookup (or history search) by `who` of organisation `org`: refuses a throttled
    /// identity or organisation, and flags one over its rate. Returns the anomaly that has just
    /// started, if any, so the caller raises the alert once per episode.
    pub fn admit(
        &self,
        who: &str,
        org: &str,
        now: DateTime<Utc>,
    ) -> Result<(), (Throttled, Option<Anomaly>)> {
        let p = &self.policy;
        let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let throttle = now + Duration::minutes(p.throttle_minutes);
        let o = tracks.organisations.entry(org.to_owned()).or_default();
        if let Some(until) = o.throttled_until {
            if until > now {
                return Err((Throttled(until), None));
            }
            o.throttled_until = None;
        }
        let org_window = Duration::minutes(p.org_window_minutes);
        while o.lookups.front().is_some_and(|at| now - *at >= org_window) {
            o.lookups.pop_front();
        }
        let org_over = o.lookups.len() >= p.org_max_lookups;
        let t = tracks.identities.entry(who.to_owned()).or_default();
        if let Some(until) = t.throttled_until {
            if until > now {
                return Err((Throttled(until), None));
            }
            t.throttled_until = None;
        }
        if org_over {
            let o = tracks.organisations.entry(org.to_owned()).or_default();
            o.throttled_until = Some(throttle);
            o.lookups.clear();
            return Err((
                Throttled(throttle),
                Some(Anomaly::Organisation {
                    lookups: p.org_max_lookups,
                    minutes: p.org_window_minutes,
                }),
            ));
        }
        while t
            .recent
            .front()
            .is_some_and(|at| now - *at >= Duration::seconds(60))
        {
            t.recent.pop_front();
        }
        if t.recent.len() >= p.max_per_minute {
            t.throttled_until = Some(throttle);
            return Err((
                Throttled(throttle),
                Some(Anomaly::Rate {
                    per_minute: p.max_per_minute,
                }),
            ));
        }
        t.recent.push_back(now);
        tracks
            .organisations
            .entry(org.to_owned())
            .or_default()
            .lookups
            .push_back(now);
        Ok(())
    }

    /// After a lookup: learns its pattern; flags (and throttles) enumeration. `found`: the answer
    /// revealed something (a flag, or a non-empty history).
    pub fn record(
        &self,
        who: &str,
        nhs: NhsNumber,
        found: bool,
        now: DateTime<Utc>,
    ) -> Option<Anomaly> {
        let p = &self.policy;
        let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let t = tracks.identities.entry(who.to_owned()).or_default();
        let n = nhs.as_u64();
        let window = p.sequential_window.max(1);
        let earlier = t.seen.iter().rev().take(window);
        let is_new = !t.seen.iter().rev().take(window).any(|s| s.nhs == n);
        let near = is_new
            && earlier
                .clone()
                .any(|s| s.nhs.abs_diff(n) <= p.sequential_gap);
        t.seen.push_back(Seen {
            nhs: n,
            found,
            near,
        });
        while t.seen.len() > window.max(p.miss_window) {
            t.seen.pop_front();
        }
        t.count_child(n, now, now - Duration::minutes(p.distinct_window_minutes));

        let nears = t.seen.iter().rev().take(window).filter(|s| s.near).count();
        let distinct = t.children.len();
        let anomaly = if nears + 1 >= p.sequential_run {
            Some(Anomaly::Sequential { run: nears + 1 })
        } else if distinct > p.max_distinct_children {
            Some(Anomaly::Distinct {
                children: distinct,
                minutes: p.distinct_window_minutes,
            })
        } else if t.seen.len() >= p.miss_window {
            let mut outcome: HashMap<u64, bool> = HashMap::new();
            for s in t.seen.iter().rev().take(p.miss_window) {
                *outcome.entry(s.nhs).or_default() |= s.found;
            }
            let of = outcome.len();
            let misses = outcome.values().filter(|f| !**f).count();
            (misses as f64 / of as f64 > p.max_miss_ratio).then_some(Anomaly::Misses { misses, of })
        } else {
            None
        };
        if anomaly.is_some() {
            t.throttled_until = Some(now + Duration::minutes(p.throttle_minutes));
            t.forget();
        }
        anomaly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    fn nhs(i: u32) -> NhsNumber {
        (i..).find_map(NhsNumber::from_prefix).unwrap()
    }

    #[test]
    fn rate_limit_throttles_for_the_configured_time() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            max_per_minute: 3,
            ..Default::default()
        });
        for i in 0..3 {
            assert!(d.admit("u", "ORG", at(i)).is_ok());
        }
        let (Throttled(until), why) = d.admit("u", "ORG", at(4)).unwrap_err();
        assert_eq!(why, Some(Anomaly::Rate { per_minute: 3 }));
        assert_eq!(until, at(4) + Duration::minutes(15));
        assert!(
            matches!(d.admit("u", "ORG", at(60 * 10)), Err((_, None))),
            "still throttled, no new alert"
        );
        assert!(
            d.admit("other", "ORG", at(5)).is_ok(),
            "other identities are unaffected"
        );
        assert!(
            d.admit("u", "ORG", at(4 + 15 * 60)).is_ok(),
            "throttle expires"
        );
    }

    #[test]
    fn sequential_numbers_are_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy::default());
        let mut flagged = None;
        for i in 0..12u32 {
            if let Some(a) = d.record("u", nhs(600_000_000 + i * 3), true, at(i as i64)) {
                flagged = Some((i, a));
                break;
            }
        }
        assert_eq!(flagged, Some((9, Anomaly::Sequential { run: 10 })));
        assert!(d.admit("u", "ORG", at(20)).is_err());
    }

    #[test]
    fn scattered_lookups_are_not_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy::default());
        for i in 0..100u32 {
            assert_eq!(
                d.record(
                    "u",
                    nhs(600_000_000 + i * 7919 * 13),
                    i % 3 != 0,
                    at(i as i64 * 60)
                ),
                None
            );
        }
    }

    #[test]
    fn mostly_misses_are_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            max_distinct_children: 1_000,
            ..Default::default()
        });
        let mut flagged = None;
        for i in 0..40u32 {
            if let Some(a) = d.record(
                "u",
                nhs(100_000_000 + i * 1_000_003),
                i % 10 == 0,
                at(i as i64),
            ) {
                flagged = Some(a);
            }
        }
        assert_eq!(flagged, Some(Anomaly::Misses { misses: 36, of: 40 }));
    }

    /// Numbers near a start, each a valid NHS number.
    fn walk(from: u32, count: usize) -> Vec<NhsNumber> {
        (from..)
            .filter_map(NhsNumber::from_prefix)
            .take(count)
            .collect()
    }

    fn first_flag(
        d: &AnomalyDetector,
        lookups: impl IntoIterator<Item = (NhsNumber, bool)>,
    ) -> Option<(usize, Anomaly)> {
        lookups
            .into_iter()
            .enumerate()
            .find_map(|(i, (n, found))| d.record("u", n, found, at(i as i64)).map(|a| (i, a)))
    }

    #[test]
    fn a_sequential_walk_interleaved_with_a_known_child_is_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            max_distinct_children: 1_000,
            ..Default::default()
        });
        let known = nhs(900_000_000);
        let lookups = walk(600_000_000, 20)
            .into_iter()
            .flat_map(|n| [(n, false), (known, true)]);
        let (i, a) = first_flag(&d, lookups).expect("flagged");
        assert_eq!(a, Anomaly::Sequential { run: 10 });
        assert_eq!(i, 18, "the tenth number of the walk");
    }

    #[test]
    fn random_numbers_with_a_known_child_every_fifth_lookup_are_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            max_distinct_children: 1_000,
            ..Default::default()
        });
        let known = nhs(900_000_000);
        let lookups = (0..40u32).map(|i| {
            if i % 5 == 4 {
                (known, true)
            } else {
                (nhs(100_000_000 + i * 1_000_003), false)
            }
        });
        let (_, a) = first_flag(&d, lookups).expect("flagged");
        assert_eq!(a, Anomaly::Misses { misses: 32, of: 33 });
    }

    #[test]
    fn too_many_different_children_in_the_window_are_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy::default());
        let known = nhs(900_000_000);
        // Scattered numbers that all find something, the known child in between.
        let lookups =
            (0..100u32).flat_map(|i| [(nhs(100_000_000 + i * 7_919_013), true), (known, true)]);
        let (i, a) = first_flag(&d, lookups).expect("flagged");
        assert_eq!(
            a,
            Anomaly::Distinct {
                children: 31,
                minutes: 10
            }
        );
        assert_eq!(i, 58, "the 30th new number after the known child");
        // The same children spread over more than the window are fine.
        let d = AnomalyDetector::new(AnomalyPolicy::default());
        for i in 0..100u32 {
            let n = nhs(100_000_000 + i * 7_919_013);
            assert_eq!(d.record("u", n, true, at(i as i64 * 60)), None, "{i}");
        }
    }

    /// What an identity's pattern keeps is bounded by the rules' windows, not by how many lookups
    /// it made: the last lookups the count-based rules read, and the distinct-children window's
    /// time (the distinct count is kept up to date, never recounted from the whole window).
    #[test]
    fn an_identity_keeps_only_its_windows() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            max_distinct_children: usize::MAX,
            sequential_run: usize::MAX,
            max_miss_ratio: 1.0,
            ..Default::default()
        });
        // 6,000 lookups of 50 children, one every 200 ms: 20 minutes.
        for i in 0..6_000u32 {
            let when = Utc.timestamp_opt(1_800_000_000, 0).single().unwrap()
                + Duration::milliseconds(i64::from(i) * 200);
            assert_eq!(
                d.record("u", nhs(100_000_000 + (i % 50) * 7_919_013), true, when),
                None
            );
        }
        let tracks = d.tracks.lock().unwrap();
        let t = &tracks.identities["u"];
        assert_eq!(
            t.seen.len(),
            40,
            "the miss window (40) is the longest count-based window"
        );
        assert_eq!(
            t.window.len(),
            3_001,
            "ten minutes of lookups, both ends included"
        );
        assert_eq!(t.children.len(), 50);
        assert_eq!(t.children.values().sum::<u32>(), 3_001);
    }

    #[test]
    fn one_organisation_over_its_volume_is_paused_with_one_alert() {
        let d = AnomalyDetector::new(AnomalyPolicy {
            org_max_lookups: 10,
            ..Default::default()
        });
        for i in 0..10 {
            assert!(d.admit(&format!("user{i}"), "RXX", at(i)).is_ok());
        }
        let (Throttled(until), why) = d.admit("user10", "RXX", at(11)).unwrap_err();
        assert_eq!(
            why,
            Some(Anomaly::Organisation {
                lookups: 10,
                minutes: 60
            })
        );
        assert_eq!(until, at(11) + Duration::minutes(15));
        assert_eq!(
            d.admit("user0", "RXX", at(12)),
            Err((Throttled(until), None))
        );
        assert!(
            d.admit("user0", "RYY", at(12)).is_ok(),
            "other organisations go on"
        );
        assert!(d.admit("user0", "RXX", at(11 + 15 * 60)).is_ok());
    }
}
