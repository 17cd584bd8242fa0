//! Prometheus metrics at `GET /metrics`: counts and latencies only, never personal data.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub lookups: Family<KindLabel, Counter>,
    pub uploads: Family<OutcomeLabel, Counter>,
    /// Seconds from a lookup reaching the service to its access and notifications being
    /// committed: the time after which the LA can see the notification.
    pub lookup_commit_seconds: Histogram,
    pub outbox_unacknowledged: Gauge<u64, AtomicU64>,
    /// Seconds from a notification's commit to its webhook receiver's 2xx.
    pub webhook_delivery_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cpis");
        let lookups = Family::<KindLabel, Counter>::default();
        let uploads = Family::<OutcomeLabel, Counter>::default();
        let lookup_commit_seconds = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        let outbox_unacknowledged = Gauge::<u64, AtomicU64>::default();
        let webhook_delivery_seconds = Histogram::new([
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0,
        ]);
        registry.register(
            "webhook_delivery_seconds",
            "Time from a notification's commit to its webhook receiver's 2xx answer",
            webhook_delivery_seconds.clone(),
        );
        registry.register(
            "lookups",
            "Lookups by kind (unscheduled, silent, miss)",
            lookups.clone(),
        );
        registry.register(
            "uploads",
            "Uploads by file outcome or status",
            uploads.clone(),
        );
        registry.register(
            "lookup_commit_seconds",
            "Time from a lookup's arrival to its access and notifications being committed",
            lookup_commit_seconds.clone(),
        );
        registry.register(
            "notifications_unacknowledged",
            "Notifications not yet acknowledged by their LA (outbox depth)",
            outbox_unacknowledged.clone(),
        );
        Metrics {
            registry,
            lookups,
            uploads,
            lookup_commit_seconds,
            outbox_unacknowledged,
            webhook_delivery_seconds,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
