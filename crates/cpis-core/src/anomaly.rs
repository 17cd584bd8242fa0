//! Lookup anomaly detection (SPEC 4): a user or system whose lookups exceed a rate, walk through
//! sequential NHS numbers, or mostly miss is throttled and reported to admins.

use chrono::{DateTime, Duration, Utc};
use cpis_domain::NhsNumber;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
pub struct AnomalyPolicy {
    /// Most lookups per identity in any 60 seconds.
    pub max_per_minute: usize,
    /// This many consecutive lookups each within `sequential_gap` of the previous NHS number
    /// look like enumeration.
    pub sequential_run: usize,
    pub sequential_gap: u64,
    /// Of the last `miss_window` lookups (once there are that many), more than this share
    /// finding nothing looks like fishing.
    pub miss_window: usize,
    pub max_miss_ratio: f64,
    /// How long a flagged identity is refused.
    pub throttle_minutes: i64,
}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        AnomalyPolicy {
            max_per_minute: 120,
            sequential_run: 10,
            sequential_gap: 100,
            miss_window: 40,
            max_miss_ratio: 0.8,
            throttle_minutes: 15,
        }
    }
}

/// Why an identity was flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    Rate { per_minute: usize },
    Sequential { run: usize },
    Misses { misses: usize, of: usize },
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::Rate { per_minute } => write!(f, "lookup rate over {per_minute} per minute"),
            Anomaly::Sequential { run } => write!(f, "{run} lookups of sequential NHS numbers"),
            Anomaly::Misses { misses, of } => {
                write!(f, "{misses} of the last {of} lookups found nothing")
            }
        }
    }
}

#[derive(Default)]
struct Track {
    recent: VecDeque<DateTime<Utc>>,
    last_nhs: Option<u64>,
    run: usize,
    outcomes: VecDeque<bool>,
    throttled_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AnomalyDetector {
    policy: AnomalyPolicy,
    tracks: Mutex<HashMap<String, Track>>,
}

/// The identity is throttled until this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub DateTime<Utc>);

impl AnomalyDetector {
    pub fn new(policy: AnomalyPolicy) -> Self {
        AnomalyDetector {
            policy,
            tracks: Mutex::new(HashMap::new()),
        }
    }

    /// Before a lookup: refuses a throttled identity, and flags one over the rate limit.
    /// Returns the anomaly that has just started, if any, so the caller can raise the alert.
    pub fn admit(&self, who: &str, now: DateTime<Utc>) -> Result<(), (Throttled, Option<Anomaly>)> {
        let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let t = tracks.entry(who.to_owned()).or_default();
        if let Some(until) = t.throttled_until {
            if until > now {
                return Err((Throttled(until), None));
            }
            t.throttled_until = None;
        }
        while t
            .recent
            .front()
            .is_some_and(|at| now - *at >= Duration::seconds(60))
        {
            t.recent.pop_front();
        }
        if t.recent.len() >= self.policy.max_per_minute {
            let until = now + Duration::minutes(self.policy.throttle_minutes);
            t.throttled_until = Some(until);
            return Err((
                Throttled(until),
                Some(Anomaly::Rate {
                    per_minute: self.policy.max_per_minute,
                }),
            ));
        }
        t.recent.push_back(now);
        Ok(())
    }

    /// After a lookup: learns its pattern; flags (and throttles) sequential walks and fishing.
    pub fn record(
        &self,
        who: &str,
        nhs: NhsNumber,
        found: bool,
        now: DateTime<Utc>,
    ) -> Option<Anomaly> {
        let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let t = tracks.entry(who.to_owned()).or_default();
        let n = nhs.as_u64();
        t.run = match t.last_nhs {
            Some(prev) if prev != n && prev.abs_diff(n) <= self.policy.sequential_gap => t.run + 1,
            _ => 0,
        };
        t.last_nhs = Some(n);
        t.outcomes.push_back(found);
        if t.outcomes.len() > self.policy.miss_window {
            t.outcomes.pop_front();
        }
        let anomaly = if t.run + 1 >= self.policy.sequential_run {
            Some(Anomaly::Sequential { run: t.run + 1 })
        } else {
            let misses = t.outcomes.iter().filter(|f| !**f).count();
            let of = t.outcomes.len();
            (of >= self.policy.miss_window
                && misses as f64 / of as f64 > self.policy.max_miss_ratio)
                .then_some(Anomaly::Misses { misses, of })
        };
        if anomaly.is_some() {
            t.throttled_until = Some(now + Duration::minutes(self.policy.throttle_minutes));
            t.run = 0;
            t.outcomes.clear();
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
            assert!(d.admit("u", at(i)).is_ok());
        }
        let (Throttled(until), why) = d.admit("u", at(4)).unwrap_err();
        assert_eq!(why, Some(Anomaly::Rate { per_minute: 3 }));
        assert_eq!(until, at(4) + Duration::minutes(15));
        assert!(
            matches!(d.admit("u", at(60 * 10)), Err((_, None))),
            "still throttled, no new alert"
        );
        assert!(
            d.admit("other", at(5)).is_ok(),
            "other identities are unaffected"
        );
        assert!(d.admit("u", at(4 + 15 * 60)).is_ok(), "throttle expires");
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
        assert!(d.admit("u", at(20)).is_err());
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
                    at(i as i64)
                ),
                None
            );
        }
    }

    #[test]
    fn mostly_misses_are_flagged() {
        let d = AnomalyDetector::new(AnomalyPolicy::default());
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
}
