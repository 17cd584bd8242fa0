//! Webhook delivery (SPEC 3.3): every notification is POSTed to each of its LA's webhooks,
//! signed with HMAC-SHA256, retried with exponential backoff and jitter until the receiver answers
//! 2xx or the retry period ends (then it is dead-lettered and shown to admins). At least once:
//! receivers de-duplicate on `CPIS-Notification-Id`.
//!
//! Signature: `CPIS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! Receivers check the HMAC and refuse timestamps outside a few minutes (replay).

use chrono::{DateTime, Duration, Utc};
use cpis_domain::{Clock, Notification};
use cpis_store::{DueDelivery, Store};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Arc;

pub use crate::webhook_url::DestinationPolicy;

#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubled each attempt.
    pub first_retry_seconds: i64,
    /// The longest wait between attempts.
    pub max_backoff_seconds: i64,
    /// After this long without success a delivery is dead-lettered.
    pub give_up_after_hours: i64,
    /// How long a worker reserves the deliveries it claims. A worker that dies holding a claim
    /// delays those deliveries by at most this long.
    pub lease_seconds: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_retry_seconds: 5,
            max_backoff_seconds: 3600,
            give_up_after_hours: 72,
            lease_seconds: 60,
        }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts: exponential, capped, plus up to 20% jitter
    /// (`jitter` in 0..1) so receivers coming back are not hit by every retry at once.
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let exp = self
            .first_retry_seconds
            .saturating_mul(1i64 << attempts.saturating_sub(1).min(30));
        let base = exp.min(self.max_backoff_seconds).max(1);
        Duration::milliseconds(
            ((base as f64) * (1.0 + 0.2 * jitter.clamp(0.0, 1.0)) * 1000.0) as i64,
        )
    }
}

/// The body every channel sends for a notification (API, webhooks, SSE): its payload plus its
/// id, kind, cursor and acknowledgement.
pub fn notification_json(n: &Notification) -> Value {
    let mut body: Value = serde_json::from_str(&n.payload).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), json!(n.id));
        obj.insert("kind".into(), json!(n.kind.code()));
        obj.insert("cursor".into(), json!(n.seq.to_string()));
        obj.insert("acknowledged_at".into(), json!(n.acknowledged_at));
        let by = n
            .acknowledged_by
            .as_ref()
            .map(|id| json!({"id": id, "name": n.acknowledged_by_name.as_deref().unwrap_or(id)}));
        obj.insert("acknowledged_by".into(), json!(by));
        obj.insert("outcome".into(), json!(n.outcome.map(|o| o.code())));
        obj.insert("note".into(), json!(n.note));
        obj.insert("assigned_to".into(), json!(n.assigned_to));
        obj.insert("escalated_at".into(), json!(n.escalated_at));
    }
    body
}

/// `t=<timestamp>,v1=<hex>` for this body.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: HMAC takes any key length"
)]
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature timestamp is outside the tolerance (replay?)")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// What a receiver does: checks the header's shape, the timestamp against `now` (± `tolerance`),
/// and the HMAC in constant time.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: HMAC takes any key length"
)]
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => v1 = Some(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => return Err(SignatureError::Malformed),
        }
    }
    let (t, v1) = (
        t.ok_or(SignatureError::Malformed)?,
        v1.ok_or(SignatureError::Malformed)?,
    );
    if (now.timestamp() - t).abs() > tolerance.num_seconds() {
        return Err(SignatureError::Stale);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| SignatureError::Mismatch)
}

/// How a delivery attempt went: the HTTP status, or a transport error.
pub type SendResult = Result<u16, String>;

/// Sends one webhook request (real HTTP in production; tests may substitute).
pub trait Sender: Send + Sync {
    fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> SendResult;
}

/// HTTP(S) with rustls, 10-second timeouts, no redirects. Every request's destination is
/// checked again against the [`DestinationPolicy`], and the connection goes only to an address
/// that passed (the resolver is the policy's): DNS rebinding gets nothing.
pub struct HttpSender {
    agent: ureq::Agent,
    policy: Arc<DestinationPolicy>,
}

impl Default for HttpSender {
    fn default() -> Self {
        HttpSender::new(DestinationPolicy::default())
    }
}

impl HttpSender {
    pub fn new(policy: DestinationPolicy) -> Self {
        let policy = Arc::new(policy);
        let resolver_policy = policy.clone();
        let resolver = move |netloc: &str| -> std::io::Result<Vec<std::net::SocketAddr>> {
            let (host, port) = netloc
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .ok_or_else(|| std::io::Error::other(format!("bad address {netloc}")))?;
            resolver_policy
                .resolve(host, port, false)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))
        };
        HttpSender {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(10))
                .redirects(0)
                .resolver(resolver)
                .build(),
            policy,
        }
    }
}

impl Sender for HttpSender {
    fn post(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> SendResult {
        if let Err(e) = self.policy.check_form(url) {
            return Err(format!("destination refused: {e}"));
        }
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_bytes(body) {
            Ok(resp) => Ok(resp.status()),
            Err(ureq::Error::Status(code, _)) => Ok(code),
            Err(e) => Err(match &e {
                ureq::Error::Transport(t) if t.kind() == ureq::ErrorKind::Dns => {
                    format!("destination refused or unresolved: {t}")
                }
                _ => e.kind().to_string(),
            }),
        }
    }
}

/// Drains the delivery queue.
pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    sender: Box<dyn Sender>,
    on_delivered: Option<Box<dyn Fn(Duration) + Send + Sync>>,
    bus: Arc<crate::bus::NotificationBus>,
}

const BATCH: u32 = 50;

impl DeliveryWorker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: RetryPolicy,
        sender: Box<dyn Sender>,
    ) -> Self {
        DeliveryWorker {
            store,
            clock,
            policy,
            sender,
            on_delivered: None,
            bus: Arc::default(),
        }
    }

    /// Wakes on `bus` (a commit that may have created notifications) instead of waiting for its
    /// next poll.
    pub fn with_bus(mut self, bus: Arc<crate::bus::NotificationBus>) -> Self {
        self.bus = bus;
        self
    }

    /// Called with each delivered notification's age (commit to receiver's 2xx), for metrics.
    pub fn on_delivered(mut self, f: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.on_delivered = Some(Box::new(f));
        self
    }

    /// Claims the deliveries due now and attempts each once. Returns how many were attempted.
    pub fn run_once(&self) -> Result<usize, cpis_store::StoreError> {
        let now = self.clock.now();
        let due = self.store.claim_deliveries(
            now,
            now + Duration::seconds(self.policy.lease_seconds.max(1)),
            BATCH,
        )?;
        for d in &due {
            self.attempt(d)?;
        }
        Ok(due.len())
    }

    fn attempt(&self, d: &DueDelivery) -> Result<(), cpis_store::StoreError> {
        let body = notification_json(&d.notification).to_string().into_bytes();
        let now = self.clock.now();
        let headers = [
            ("Content-Type", "application/json".to_owned()),
            (
                "CPIS-Signature",
                sign(&d.webhook.secret, now.timestamp(), &body),
            ),
            ("CPIS-Notification-Id", d.notification.id.clone()),
            (
                "CPIS-Notification-Kind",
                d.notification.kind.code().to_owned(),
            ),
            (
                "User-Agent",
                concat!("cpis/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        let outcome = self.sender.post(&d.webhook.url, &headers, &body);
        let now = self.clock.now();
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                if let Some(f) = &self.on_delivered {
                    f(now - d.notification.created_at);
                }
                self.store.delivery_succeeded(d.id, status, now)
            }
            other => {
                let (status, error) = match other {
                    Ok(s) => (Some(s), format!("HTTP {s}")),
                    Err(e) => (None, e),
                };
                let attempts = d.attempts + 1;
                let retry_at = now
                    + self
                        .policy
                        .backoff(attempts, rand::thread_rng().gen::<f64>());
                let give_up =
                    retry_at - d.created_at > Duration::hours(self.policy.give_up_after_hours);
                if give_up {
                    tracing::warn!(delivery = d.id, attempts, "webhook delivery dead-lettered");
                }
                self.store.delivery_failed(
                    d.id,
                    status,
                    &error,
                    (!give_up).then_some(retry_at),
                    now,
                )
            }
        }
    }

    /// Runs in a background thread until `stop` is set: delivers what is due, then waits for the
    /// bus (a new notification) or at most a second (retries fall due with time).
    #[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail here")]
    pub fn spawn(self, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
        use std::sync::atomic::Ordering;
        std::thread::Builder::new()
            .name("cpis-webhooks".into())
            .spawn(move || {
                let mut seen = self.bus.generation();
                while !stop.load(Ordering::Relaxed) {
                    match self.run_once() {
                        Ok(0) => seen = self.bus.wait(seen, IDLE_WAIT),
                        Ok(_) => seen = self.bus.generation(),
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook delivery: store unavailable");
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                    }
                }
            })
            .expect("spawn the webhook delivery thread")
    }
}

/// The longest an idle delivery worker waits before looking for retries that fell due.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn signatures_verify_and_reject_tampering_and_replays() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).single().unwrap();
        let body = br#"{"id":"x"}"#;
        let h = sign("s3cret", now.timestamp(), body);
        let tol = Duration::minutes(5);
        assert_eq!(verify("s3cret", &h, body, now, tol), Ok(()));
        assert_eq!(
            verify("other", &h, body, now, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &h, br#"{"id":"y"}"#, now, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", &h, body, now + Duration::minutes(6), tol),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", "v1=00", body, now, tol),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("s3cret", "t=1,v1=zz", body, now, tol),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), Duration::seconds(5));
        assert_eq!(p.backoff(2, 0.0), Duration::seconds(10));
        assert_eq!(p.backoff(4, 0.0), Duration::seconds(40));
        assert_eq!(p.backoff(40, 0.0), Duration::seconds(3600));
        assert_eq!(p.backoff(1, 1.0), Duration::seconds(6));
    }

    proptest! {
        #[test]
        fn verify_never_panics_on_any_header(header in "\\PC{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let now = Utc.timestamp_opt(1_800_000_000, 0).single().unwrap();
            let _ = verify("k", &header, &body, now, Duration::minutes(5));
        }

        #[test]
        fn a_signature_verifies_only_for_its_body(body in proptest::collection::vec(any::<u8>(), 0..256), flip in 0usize..256) {
            let now = Utc.timestamp_opt(1_800_000_000, 0).single().unwrap();
            let h = sign("k", now.timestamp(), &body);
            prop_assert_eq!(verify("k", &h, &body, now, Duration::minutes(5)), Ok(()));
            if !body.is_empty() {
                let mut other = body.clone();
                let i = flip % other.len();
                other[i] ^= 1;
                prop_assert_eq!(verify("k", &h, &other, now, Duration::minutes(5)), Err(SignatureError::Mismatch));
            }
        }
    }
}
