//! Prometheus metrics at `GET /metrics`: counts and latencies only, never personal data.
//! Label values are closed sets: route templates (never a concrete path), status codes, outcome
//! codes, channel names. docs/OPERATIONS.md lists every metric and what it means.
//!
//! The registry encodes OpenMetrics 1.0 text; [`prometheus_text`] turns that into the Prometheus
//! text format 0.0.4 for scrapers that ask for it (`Accept: text/plain; version=0.0.4`).

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/uploads/{id}`), or `<unmatched>`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// `webhook` or `mesh`.
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// `handshake`, `receive` or `send`.
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

pub struct Metrics {
    registry: Registry,
    pub lookups: Family<KindLabel, Counter>,
    pub uploads: Family<OutcomeLabel, Counter>,
    /// Row results of uploads by record outcome code (CPR01–CPR07).
    pub upload_rows: Family<OutcomeLabel, Counter>,
    /// Seconds from a lookup reaching the service to its access and notifications being
    /// committed: the time after which the LA can see the notification.
    pub lookup_commit_seconds: Histogram,
    pub outbox_unacknowledged: Gauge<u64, AtomicU64>,
    /// Seconds from a notification's commit to its webhook receiver's 2xx.
    pub webhook_delivery_seconds: Histogram,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_seconds: HistogramFamily<RouteLabels>,
    pub outbox_pending: Family<ChannelLabel, Gauge<u64, AtomicU64>>,
    pub outbox_oldest_age_seconds: Family<ChannelLabel, Gauge<f64, AtomicU64>>,
    pub outbox_dead_letters: Family<ChannelLabel, Gauge<u64, AtomicU64>>,
    pub mesh_failures: Family<OperationLabel, Counter>,
    /// Mirrors `cpis_store::unavailable_errors()`, read at each scrape.
    database_unavailable: Counter,
    /// Mirror `cpis_store::sqlite::lookup_spool_entries()`, read at each scrape.
    lookup_spool_written: Counter,
    lookup_spool_copied: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cpis");
        let lookups = Family::<KindLabel, Counter>::default();
        let uploads = Family::<OutcomeLabel, Counter>::default();
        let upload_rows = Family::<OutcomeLabel, Counter>::default();
        let lookup_commit_seconds = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        let outbox_unacknowledged = Gauge::<u64, AtomicU64>::default();
        let webhook_delivery_seconds = Histogram::new([
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0,
        ]);
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(http_histogram);
        let outbox_pending = Family::<ChannelLabel, Gauge<u64, AtomicU64>>::default();
        let outbox_oldest_age_seconds = Family::<ChannelLabel, Gauge<f64, AtomicU64>>::default();
        let outbox_dead_letters = Family::<ChannelLabel, Gauge<u64, AtomicU64>>::default();
        let mesh_failures = Family::<OperationLabel, Counter>::default();
        let database_unavailable = Counter::default();
        let lookup_spool_written = Counter::default();
        let lookup_spool_copied = Counter::default();
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        // Every channel shows from the first scrape, before anything was queued or failed.
        for channel in ["webhook", "mesh"] {
            let label = ChannelLabel {
                channel: channel.to_owned(),
            };
            let _ = outbox_pending.get_or_create(&label);
            let _ = outbox_oldest_age_seconds.get_or_create(&label);
            let _ = outbox_dead_letters.get_or_create(&label);
        }
        for outcome in cpis_domain::RecordOutcome::ALL {
            let _ = upload_rows.get_or_create(&OutcomeLabel {
                outcome: outcome.code().to_owned(),
            });
        }
        for operation in ["handshake", "receive", "send"] {
            let _ = mesh_failures.get_or_create(&OperationLabel {
                operation: operation.to_owned(),
            });
        }

        registry.register(
            "build_info",
            "Always 1; the version label names the running cpis build",
            build_info,
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from an HTTP request's arrival to its response headers, by method and route template",
            http_request_seconds.clone(),
        );
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
            "Uploads by file outcome (CPF01-CPF06) or status",
            uploads.clone(),
        );
        registry.register(
            "upload_rows",
            "Upload rows by record outcome (CPR01-CPR07)",
            upload_rows.clone(),
        );
        registry.register(
            "lookup_commit_seconds",
            "Time from a lookup's arrival to its access and notifications being committed",
            lookup_commit_seconds.clone(),
        );
        registry.register(
            "notifications_unacknowledged",
            "Notifications not yet acknowledged by their LA",
            outbox_unacknowledged.clone(),
        );
        registry.register(
            "outbox_pending",
            "Messages waiting to be delivered, by channel (webhook deliveries, MESH messages)",
            outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest message waiting to be delivered, by channel (0 when none waits)",
            outbox_oldest_age_seconds.clone(),
        );
        registry.register(
            "outbox_dead_letters",
            "Messages given up on after their retries (dead letters), by channel",
            outbox_dead_letters.clone(),
        );
        registry.register(
            "mesh_failures",
            "Failed MESH calls by operation (handshake, receive, send)",
            mesh_failures.clone(),
        );
        registry.register(
            "database_unavailable_errors",
            "Times the database was unavailable (busy past the timeout, unreachable, disk full)",
            database_unavailable.clone(),
        );
        registry.register(
            "lookup_spool_entries_written",
            "Lookup writes made durable in the SQLite lookup spool while the writer was busy",
            lookup_spool_written.clone(),
        );
        registry.register(
            "lookup_spool_entries_copied",
            "Lookup writes copied from the SQLite lookup spool into the database",
            lookup_spool_copied.clone(),
        );
        Metrics {
            registry,
            lookups,
            uploads,
            upload_rows,
            lookup_commit_seconds,
            outbox_unacknowledged,
            webhook_delivery_seconds,
            http_requests,
            http_request_seconds,
            outbox_pending,
            outbox_oldest_age_seconds,
            outbox_dead_letters,
            mesh_failures,
            database_unavailable,
            lookup_spool_written,
            lookup_spool_copied,
        }
    }
}

impl Metrics {
    /// The OpenMetrics 1.0 text of every metric (ends with `# EOF`).
    pub fn render(&self) -> String {
        self.database_unavailable
            .inner()
            .store(cpis_store::unavailable_errors(), Ordering::Relaxed);
        let (written, copied) = cpis_store::sqlite::lookup_spool_entries();
        self.lookup_spool_written
            .inner()
            .store(written, Ordering::Relaxed);
        self.lookup_spool_copied
            .inner()
            .store(copied, Ordering::Relaxed);
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Counts an answered HTTP request and its latency.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_request_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Sets the outbox gauges from the store's counts at `now`.
    pub fn set_outboxes(
        &self,
        stats: &[cpis_store::OutboxStats],
        now: chrono::DateTime<chrono::Utc>,
    ) {
        for s in stats {
            let label = ChannelLabel {
                channel: s.channel.to_owned(),
            };
            self.outbox_pending.get_or_create(&label).set(s.pending);
            self.outbox_dead_letters.get_or_create(&label).set(s.dead);
            let age = s.oldest_pending.map_or(0.0, |t| {
                ((now - t).num_milliseconds().max(0) as f64) / 1000.0
            });
            self.outbox_oldest_age_seconds
                .get_or_create(&label)
                .set(age);
        }
    }

    /// Counts a failed MESH call.
    pub fn mesh_failed(&self, what: cpis_core::mesh::MeshFailure) {
        self.mesh_failures
            .get_or_create(&OperationLabel {
                operation: what.as_str().to_owned(),
            })
            .inc();
    }
}

impl crate::AppState {
    /// Counts the MESH worker's failed calls in the metrics (`MeshWorker::on_failure`).
    pub fn mesh_failure_observer(
        &self,
    ) -> impl Fn(cpis_core::mesh::MeshFailure) + Send + Sync + 'static {
        let metrics = self.metrics.clone();
        move |what| metrics.mesh_failed(what)
    }
}

/// The content type of the OpenMetrics text (the default answer of `/metrics`).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header prefers the Prometheus text format (`text/plain`) to OpenMetrics:
/// the media type with the higher `q` wins; OpenMetrics on a tie, with no header, or for `*/*`.
pub fn wants_prometheus_text(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut openmetrics, mut text) = (None::<f32>, None::<f32>);
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        let slot = match media.as_str() {
            "application/openmetrics-text" => &mut openmetrics,
            "text/plain" => &mut text,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    match (text, openmetrics) {
        (Some(t), Some(o)) => t > 0.0 && t > o,
        (Some(t), None) => t > 0.0,
        _ => false,
    }
}

/// OpenMetrics text as the Prometheus text format 0.0.4: no `# UNIT` or `# EOF` lines, and a
/// counter's `# HELP`/`# TYPE` name its samples (`x_total`), as 0.0.4 parsers expect. Gauges
/// and histograms read the same in both.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match meta {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert!(!wants_prometheus_text(None));
        assert!(!wants_prometheus_text(Some("*/*")));
        assert!(wants_prometheus_text(Some("text/plain; version=0.0.4")));
        assert!(wants_prometheus_text(Some("text/plain")));
        assert!(!wants_prometheus_text(Some(
            "application/openmetrics-text; version=1.0.0"
        )));
        // Prometheus's own scrape header prefers OpenMetrics.
        assert!(!wants_prometheus_text(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(wants_prometheus_text(Some(
            "application/openmetrics-text;q=0.2, text/plain;version=0.0.4;q=0.9"
        )));
        assert!(!wants_prometheus_text(Some("text/plain;q=0")));
    }

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_has_no_eof() {
        let m = Metrics::default();
        m.lookups
            .get_or_create(&KindLabel {
                kind: "miss".into(),
            })
            .inc();
        let om = m.render();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE cpis_lookups counter\n"), "{om}");
        let text = prometheus_text(&om);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("# HELP cpis_lookups_total Lookups"), "{text}");
        assert!(
            text.contains("# TYPE cpis_lookups_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("cpis_lookups_total{kind=\"miss\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cpis_lookup_commit_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains("cpis_build_info{version=\""), "{text}");
    }
}
