//! Exponential backoff with jitter for idempotent calls.

use std::time::Duration;

use crate::error::MeshError;

/// Retry policy: up to `attempts` tries in all, waiting between them an exponentially growing
/// delay (`base_delay`, doubled each time, capped at `max_delay`) with random jitter (half
/// fixed, half random). Only [`MeshError::Unavailable`] is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Total tries including the first; 0 and 1 both mean "no retry".
    pub attempts: u32,
    /// Delay before the second try (before jitter).
    pub base_delay: Duration,
    /// Upper bound for any one delay.
    pub max_delay: Duration,
}

impl Default for Retry {
    /// 4 tries, 500 ms base delay, 10 s cap.
    fn default() -> Self {
        Retry {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// No retries at all.
    pub fn none() -> Self {
        Retry {
            attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The un-jittered delay after failed try number `failed_try` (1-based).
    pub fn backoff(&self, failed_try: u32) -> Duration {
        let shift = failed_try.saturating_sub(1).min(31);
        let grown = self.base_delay.saturating_mul(1u32 << shift);
        grown.min(self.max_delay)
    }

    /// The delay to wait after failed try number `failed_try`: between half and all of
    /// [`Retry::backoff`].
    pub fn delay(&self, failed_try: u32) -> Duration {
        let full = self.backoff(failed_try);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), 0..=nanos)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Runs `call` (given the 1-based try number) until it succeeds, fails with a
    /// non-retryable error, or the tries run out; `what` names the call in logs.
    pub(crate) fn run<T>(
        &self,
        what: &str,
        mut call: impl FnMut(u32) -> Result<T, MeshError>,
    ) -> Result<T, MeshError> {
        self.run_with(what, |n| {
            call(n).map_err(|e| {
                let retry = e.is_retryable();
                (e, retry)
            })
        })
    }

    /// Like [`Retry::run`], but `call` says itself whether each failure may be retried
    /// (`(error, may_retry)`), for calls that are only safe to repeat in some failures.
    pub(crate) fn run_with<T>(
        &self,
        what: &str,
        mut call: impl FnMut(u32) -> Result<T, (MeshError, bool)>,
    ) -> Result<T, MeshError> {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match call(attempt) {
                Ok(v) => return Ok(v),
                Err((e, true)) if attempt < attempts => {
                    let wait = self.delay(attempt);
                    tracing::warn!(
                        call = what,
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %e,
                        "MESH call failed; retrying"
                    );
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let r = Retry {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(200));
        assert_eq!(r.backoff(3), Duration::from_millis(400));
        assert_eq!(r.backoff(4), Duration::from_millis(800));
        assert_eq!(r.backoff(5), Duration::from_millis(1000));
        assert_eq!(r.backoff(100), Duration::from_millis(1000));
        for n in 1..8 {
            let d = r.delay(n);
            assert!(d >= r.backoff(n) / 2 && d <= r.backoff(n), "{d:?}");
        }
    }

    #[test]
    fn retries_only_unavailable_and_stops_after_attempts() {
        let r = Retry {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut tries = 0;
        let out: Result<(), _> = r.run("t", |_| {
            tries += 1;
            Err(MeshError::Unavailable("down".into()))
        });
        assert!(matches!(out, Err(MeshError::Unavailable(_))));
        assert_eq!(tries, 3);

        let mut tries = 0;
        let out: Result<(), _> = r.run("t", |_| {
            tries += 1;
            Err(MeshError::Rejected {
                status: 403,
                detail: "no".into(),
            })
        });
        assert!(matches!(out, Err(MeshError::Rejected { status: 403, .. })));
        assert_eq!(tries, 1);

        let mut tries = 0;
        let out = r.run("t", |n| {
            tries += 1;
            if n < 2 {
                Err(MeshError::Unavailable("blip".into()))
            } else {
                Ok(n)
            }
        });
        assert_eq!(out.unwrap(), 2);
        assert_eq!(tries, 2);

        // A retryable error the caller marks as unsafe to repeat is returned at once.
        let mut tries = 0;
        let out: Result<(), _> = r.run_with("t", |_| {
            tries += 1;
            Err((MeshError::Unavailable("maybe sent".into()), false))
        });
        assert!(matches!(out, Err(MeshError::Unavailable(_))));
        assert_eq!(tries, 1);
    }
}
