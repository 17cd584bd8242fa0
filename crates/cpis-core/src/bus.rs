//! One signal that wakes every consumer of the notification outbox (the live stream, webhook
//! delivery, the MESH sender) when a commit may have created notifications: a group of lookups,
//! an upload, a demographics change feed. Consumers still look at the store for what is there;
//! the bus only says "look now" instead of each polling on its own timer.
//!
//! Waking is cheap and may be spurious; a consumer that misses a wake-up (it was busy) finds the
//! work at its next look, which its fallback timeout bounds.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub struct NotificationBus {
    /// How many times the bus has been published to.
    generation: Mutex<u64>,
    changed: Condvar,
    /// The same signal for async consumers.
    notify: tokio::sync::Notify,
}

impl NotificationBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A commit that may have created notifications has happened.
    pub fn publish(&self) {
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *g = g.wrapping_add(1);
        drop(g);
        self.changed.notify_all();
        self.notify.notify_waiters();
    }

    /// How many publishes there have been: pass it to [`Self::wait`] after looking at the store.
    pub fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until a publish after `seen`, or until `timeout`; returns the generation then.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (g, _) = self
            .changed
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *g
    }

    /// Completes at the next publish. Create it before looking at the store, then await it, so a
    /// publish in between is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_publish_wakes_a_blocked_waiter_at_once_and_a_timeout_ends_a_quiet_wait() {
        let bus = Arc::new(NotificationBus::new());
        let seen = bus.generation();
        let started = Instant::now();
        assert_eq!(
            bus.wait(seen, Duration::from_millis(50)),
            seen,
            "nothing published"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));

        let publisher = bus.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            publisher.publish();
        });
        let started = Instant::now();
        let now = bus.wait(seen, Duration::from_secs(30));
        assert_eq!(now, seen + 1);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "woken, not timed out"
        );
        t.join().unwrap();
        // A publish that happened before the wait is not missed.
        bus.publish();
        assert_eq!(bus.wait(now, Duration::from_secs(30)), now + 1);
    }

    #[tokio::test]
    async fn async_consumers_are_woken_too() {
        let bus = Arc::new(NotificationBus::new());
        let woken = bus.notified();
        let b = bus.clone();
        tokio::spawn(async move { b.publish() });
        tokio::time::timeout(Duration::from_secs(10), woken)
            .await
            .expect("woken by the publish");
    }
}
