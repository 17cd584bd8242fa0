//! Failed authentication, throttled and counted (docs/SECURITY.md).
//!
//! Every failed credential is counted against the client's address and against the credential
//! itself (a digest of its distinctive part: a token's start, a JWT's signature). Within a window:
//!
//! - the first `audit_per_window` failures from an address are audited one by one, as before;
//!   the rest are counted and written as **one** audit entry with the count when the window
//!   closes, so a client sending bad tokens as fast as it can no longer grows the audit chain by
//!   a row per request;
//! - past `max_per_address` failures from an address, or `max_per_credential` for one credential
//!   from anywhere, further failures are answered **429** with `Retry-After` until
//!   `throttle_seconds` have passed.
//!
//! Valid credentials are never refused here: a clinician behind the same NAT or proxy as a
//! misbehaving client still signs in. Failures cost a 429 instead of a 401 and no audit row.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// `[auth_failures]` settings.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailurePolicy {
    /// Length of a counting window.
    pub window_seconds: i64,
    /// Failures from one address audited one by one per window; the rest are counted.
    pub audit_per_window: u32,
    /// Failures from one address per window before further failures answer 429.
    pub max_per_address: u32,
    /// Failures of one credential (from any address) per window before 429.
    pub max_per_credential: u32,
    /// How long 429 is answered once a limit is passed.
    pub throttle_seconds: i64,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            window_seconds: 60,
            audit_per_window: 10,
            max_per_address: 30,
            max_per_credential: 10,
            throttle_seconds: 300,
        }
    }
}

/// What to do with one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Write this failure to the audit on its own (else it is counted into an aggregate).
    pub audit: bool,
    /// Answer 429 with this many seconds in `Retry-After` (else 401).
    pub retry_after: Option<u64>,
}

/// Failures from one address that were counted, not audited one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedFailures {
    pub address: String,
    pub count: u32,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Window {
    started: DateTime<Utc>,
    last: DateTime<Utc>,
    failures: u32,
    counted: u32,
    throttled_until: Option<DateTime<Utc>>,
}

impl Window {
    fn new(now: DateTime<Utc>) -> Self {
        Window {
            started: now,
            last: now,
            failures: 0,
            counted: 0,
            throttled_until: None,
        }
    }
}

#[derive(Default)]
struct Windows {
    addresses: HashMap<String, Window>,
    credentials: HashMap<String, Window>,
    closed: Vec<CountedFailures>,
}

#[derive(Default)]
pub struct FailureThrottle {
    policy: FailurePolicy,
    windows: Mutex<Windows>,
}

/// The key a credential is counted under: a digest of its distinctive part (never the token
/// itself). All JWTs of one provider begin alike, so for a JWT it is the signature.
pub fn credential_key(token: &str) -> String {
    let part = match token.rsplit_once('.') {
        Some((_, signature)) if token.matches('.').count() == 2 => signature,
        _ => token,
    };
    let distinctive: String = part.chars().take(24).collect();
    hex::encode(&Sha256::digest(distinctive.as_bytes())[..8])
}

impl FailureThrottle {
    pub fn new(policy: FailurePolicy) -> Self {
        FailureThrottle {
            policy,
            windows: Mutex::new(Windows::default()),
        }
    }

    /// Counts one failed authentication from `address` with `credential` (a
    /// [`credential_key`], or `None` for a password login, counted per address only).
    pub fn failed(
        &self,
        address: &str,
        credential: Option<&str>,
        now: DateTime<Utc>,
    ) -> FailureVerdict {
        let p = self.policy;
        let window = Duration::seconds(p.window_seconds);
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        Self::close_old(&mut w, window, now);
        let a = w
            .addresses
            .entry(address.to_owned())
            .or_insert_with(|| Window::new(now));
        a.failures += 1;
        a.last = now;
        let audit = a.failures <= p.audit_per_window;
        if !audit {
            a.counted += 1;
        }
        if a.throttled_until.is_none() && a.failures > p.max_per_address {
            a.throttled_until = Some(now + Duration::seconds(p.throttle_seconds));
        }
        let mut until = a.throttled_until.filter(|t| *t > now);
        if let Some(key) = credential {
            let c = w
                .credentials
                .entry(key.to_owned())
                .or_insert_with(|| Window::new(now));
            c.failures += 1;
            c.last = now;
            if c.throttled_until.is_none() && c.failures > p.max_per_credential {
                c.throttled_until = Some(now + Duration::seconds(p.throttle_seconds));
            }
            until = until.max(c.throttled_until.filter(|t| *t > now));
        }
        FailureVerdict {
            audit,
            retry_after: until.map(|t| (t - now).num_seconds().max(1).unsigned_abs()),
        }
    }

    /// Windows that have closed with failures counted but not yet audited: write one entry each.
    pub fn take_counted(&self, now: DateTime<Utc>) -> Vec<CountedFailures> {
        let window = Duration::seconds(self.policy.window_seconds);
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        Self::close_old(&mut w, window, now);
        std::mem::take(&mut w.closed)
    }

    /// Ends windows older than `window` whose throttle (if any) is over; keeps their counts.
    fn close_old(w: &mut Windows, window: Duration, now: DateTime<Utc>) {
        let over =
            |x: &Window| now - x.started >= window && x.throttled_until.is_none_or(|t| t <= now);
        let mut closed = Vec::new();
        w.addresses.retain(|address, x| {
            if !over(x) {
                return true;
            }
            if x.counted > 0 {
                closed.push(CountedFailures {
                    address: address.clone(),
                    count: x.counted,
                    from: x.started,
                    to: x.last,
                });
            }
            false
        });
        w.closed.extend(closed);
        w.credentials.retain(|_, x| !over(x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    #[test]
    fn past_the_audit_allowance_failures_are_counted_into_one_entry() {
        let t = FailureThrottle::new(FailurePolicy::default());
        let verdicts: Vec<_> = (0..25)
            .map(|i| t.failed("10.0.0.9", Some(&credential_key(&format!("bad{i}"))), at(i)))
            .collect();
        assert!(verdicts[..10].iter().all(|v| v.audit));
        assert!(verdicts[10..].iter().all(|v| !v.audit));
        assert!(verdicts.iter().all(|v| v.retry_after.is_none()), "25 < 30");
        assert!(
            t.take_counted(at(30)).is_empty(),
            "the window is still open"
        );
        let counted = t.take_counted(at(61));
        assert_eq!(
            counted,
            vec![CountedFailures {
                address: "10.0.0.9".into(),
                count: 15,
                from: at(0),
                to: at(24)
            }]
        );
        assert!(t.take_counted(at(62)).is_empty(), "taken once");
    }

    #[test]
    fn an_address_over_its_limit_gets_429_until_the_throttle_ends() {
        let t = FailureThrottle::new(FailurePolicy::default());
        for i in 0..30 {
            let v = t.failed("10.0.0.9", Some(&credential_key(&format!("bad{i}"))), at(0));
            assert_eq!(v.retry_after, None, "failure {i}");
        }
        let v = t.failed("10.0.0.9", Some(&credential_key("bad30")), at(1));
        assert_eq!(v.retry_after, Some(300));
        let v = t.failed("10.0.0.9", Some(&credential_key("bad31")), at(200));
        assert_eq!(v.retry_after, Some(101), "still throttled, less to wait");
        assert_eq!(
            t.failed("10.0.0.8", Some(&credential_key("x")), at(200))
                .retry_after,
            None,
            "other addresses are not affected"
        );
        // After the throttle, a new window: the counts start again.
        let v = t.failed("10.0.0.9", Some(&credential_key("bad32")), at(302));
        assert_eq!(
            v,
            FailureVerdict {
                audit: true,
                retry_after: None
            }
        );
        let counted = t.take_counted(at(302));
        assert_eq!(counted.len(), 1);
        assert_eq!(
            counted[0].count, 22,
            "failures 11 to 32 of the first window"
        );
    }

    #[test]
    fn one_credential_tried_from_many_addresses_is_throttled() {
        let t = FailureThrottle::new(FailurePolicy::default());
        let key = credential_key("stolen-token-abcdef");
        for i in 0..10 {
            assert_eq!(
                t.failed(&format!("10.0.1.{i}"), Some(&key), at(i))
                    .retry_after,
                None
            );
        }
        assert!(t
            .failed("10.0.1.99", Some(&key), at(11))
            .retry_after
            .is_some());
    }

    #[test]
    fn jwts_of_one_provider_are_told_apart_by_their_signature() {
        let a = credential_key("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLWE");
        let b = credential_key("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2lnbmF0dXJlLWI");
        assert_ne!(a, b);
        assert!(!a.contains("eyJ"), "the key is a digest");
    }
}
