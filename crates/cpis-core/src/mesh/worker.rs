//! The MESH worker: one background thread polling cpis's inbox and draining the MESH outbox.

use super::inbound::{Inbound, Received};
use super::outbound::{self, Outbound, SendPass};
use super::MeshError;
use crate::delivery::RetryPolicy;
use crate::upload::UploadEngine;
use cpis_domain::Clock;
use cpis_mesh::MeshClient;
use cpis_store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the worker does what (the `[mesh]` section of the config file).
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshSettings {
    /// Seconds between inbox polls (MESH asks clients not to poll more often than needed).
    pub inbox_poll_seconds: u64,
    /// Milliseconds between passes over the outbox.
    pub send_interval_ms: u64,
    /// Retry, lease and dead-letter rules for outgoing messages.
    pub retry: RetryPolicy,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            inbox_poll_seconds: 60,
            send_interval_ms: 500,
            retry: RetryPolicy::default(),
        }
    }
}

/// What one full pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub received: Vec<Received>,
    pub queued: usize,
    pub sent: SendPass,
}

/// A MESH call that failed, as counted in the metrics (`cpis_mesh_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeshFailure {
    /// The handshake (the worker's first call, and daily) failed.
    Handshake,
    /// Reading the inbox or taking a message from it failed.
    Receive,
    /// A message to an LA mailbox was not sent (it will be retried, or was dead-lettered).
    Send,
}

impl MeshFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            MeshFailure::Handshake => "handshake",
            MeshFailure::Receive => "receive",
            MeshFailure::Send => "send",
        }
    }
}

type FailureHook = Arc<dyn Fn(MeshFailure) + Send + Sync>;

pub struct MeshWorker {
    client: MeshClient,
    engine: Arc<UploadEngine>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: MeshSettings,
    on_failure: Option<FailureHook>,
    /// Woken by commits that may have created notifications: they are queued and sent at once.
    bus: Arc<crate::bus::NotificationBus>,
}

impl MeshWorker {
    pub fn new(
        client: MeshClient,
        engine: Arc<UploadEngine>,
        clock: Arc<dyn Clock>,
        settings: MeshSettings,
    ) -> Self {
        MeshWorker {
            client,
            store: engine.store().clone(),
            engine,
            clock,
            settings,
            on_failure: None,
            bus: Arc::default(),
        }
    }

    /// Queues and sends new notifications as soon as `bus` says a commit may have made some,
    /// rather than at the next send tick.
    pub fn with_bus(mut self, bus: Arc<crate::bus::NotificationBus>) -> Self {
        self.bus = bus;
        self
    }

    /// Calls `f` with each failed MESH call (for metrics).
    pub fn on_failure(mut self, f: impl Fn(MeshFailure) + Send + Sync + 'static) -> Self {
        self.on_failure = Some(Arc::new(f));
        self
    }

    fn failed(&self, what: MeshFailure) {
        if let Some(f) = &self.on_failure {
            f(what);
        }
    }

    /// Takes every message in the inbox (see [`Received`]). Stops at the first MESH failure.
    pub fn receive(&self) -> Result<Vec<Received>, MeshError> {
        let out = self.receive_all();
        if out.is_err() {
            self.failed(MeshFailure::Receive);
        }
        out
    }

    fn receive_all(&self) -> Result<Vec<Received>, MeshError> {
        let inbound = Inbound {
            client: &self.client,
            engine: &self.engine,
            store: &self.store,
            clock: &self.clock,
        };
        let mut out = Vec::new();
        for id in self.client.inbox()? {
            match inbound.process(&id) {
                Ok(r) => out.push(r),
                // One message MESH will not hand over (gone, or refused to cpis) must not stop
                // the others: it stays in the inbox, and the next poll tries it again.
                Err(MeshError::Mesh(e)) if !e.is_retryable() => {
                    self.failed(MeshFailure::Receive);
                    tracing::warn!(mesh_message = %id, error = %e, "MESH message could not be taken");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Queues pending notifications for LA mailboxes; returns how many were queued.
    pub fn queue_notifications(&self) -> Result<usize, MeshError> {
        Ok(outbound::queue_notifications(&self.store, &self.clock)?)
    }

    /// Sends the outbox messages due now.
    pub fn send_due(&self) -> Result<SendPass, MeshError> {
        Ok(Outbound {
            client: &self.client,
            store: &self.store,
            clock: &self.clock,
            policy: &self.settings.retry,
            on_failure: &|| self.failed(MeshFailure::Send),
        }
        .send_due()?)
    }

    /// Receive, queue, send: what the background thread does, once.
    pub fn run_once(&self) -> Result<Pass, MeshError> {
        Ok(Pass {
            received: self.receive()?,
            queued: self.queue_notifications()?,
            sent: self.send_due()?,
        })
    }

    /// Runs in a background thread until `stop` is set: a handshake first (and daily), the
    /// inbox every `inbox_poll_seconds`, the outbox every `send_interval_ms`. While MESH is
    /// unreachable it waits, doubling up to a minute, and carries on where it was.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "cannot fail: spawn the MESH worker thread"
    )]
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("cpis-mesh".into())
            .spawn(move || self.run(&stop))
            .expect("spawn the MESH worker thread")
    }

    fn run(&self, stop: &AtomicBool) {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        let poll = Duration::from_secs(self.settings.inbox_poll_seconds.max(1));
        let tick = Duration::from_millis(self.settings.send_interval_ms.max(50));
        let mut last_handshake: Option<Instant> = None;
        let mut next_poll = Instant::now();
        let mut outage = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let seen = self.bus.generation();
            let result = (|| -> Result<(), MeshError> {
                if last_handshake.is_none_or(|t| t.elapsed() >= DAY) {
                    self.client
                        .handshake()
                        .inspect_err(|_| self.failed(MeshFailure::Handshake))?;
                    tracing::info!(mailbox = %self.client.mailbox_id(), "MESH handshake done");
                    last_handshake = Some(Instant::now());
                }
                if Instant::now() >= next_poll {
                    let received = self.receive()?;
                    if !received.is_empty() {
                        tracing::info!(messages = received.len(), "MESH inbox processed");
                    }
                    next_poll = Instant::now() + poll;
                }
                self.queue_notifications()?;
                // Failed sends wait for their own retry time (recorded in the outbox).
                self.send_due()?;
                Ok(())
            })();
            let wait = match result {
                Ok(()) => {
                    outage = Duration::ZERO;
                    tick
                }
                Err(e) => {
                    outage = (outage * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    tracing::warn!(error = %e, retry_in_s = outage.as_secs(), "MESH pass failed");
                    outage
                }
            };
            // Waits in short steps (to see `stop`); a commit that may have created notifications
            // ends the wait at once, unless MESH is out (then the back-off holds).
            let until = Instant::now() + wait;
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                let step = until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50));
                if self.bus.wait(seen, step) != seen && outage.is_zero() {
                    break;
                }
            }
        }
    }
}
