use crate::progress::ProgressRegistry;
use cpis_auth::Authenticator;
use cpis_core::anomaly::AnomalyDetector;
use cpis_core::LookupService;
use cpis_core::UploadEngine;
use cpis_domain::Clock;
use cpis_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Server settings (from the config file, environment or flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest upload body accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Where upload bodies are spooled (default: the system temp dir).
    pub spool_dir: Option<PathBuf>,
    /// The public base URL FHIR `fullUrl`s are built on. `cpis serve` sets the address it
    /// listens on when none is configured; never taken from a request's `Host` header.
    pub public_base_url: Option<String>,
    /// The canonical base of cpis's own FHIR definitions (the expected-delivery-date extension,
    /// the care-setting-type code system, the LA local-id system); default: the server's FHIR
    /// base, where it serves them.
    pub fhir_canonical_base: Option<String>,
    /// Days after a UCPP's expected delivery date with no plan for the baby before its LA gets a
    /// `birth-reminder` notification (housekeeping; default 14).
    pub birth_reminder_days: u32,
    /// The LA work queue: escalation deadline and repeat window.
    pub work_queue: cpis_domain::work_queue::WorkQueuePolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 256 * 1024 * 1024,
            spool_dir: None,
            public_base_url: None,
            fhir_canonical_base: None,
            birth_reminder_days: cpis_core::lifecycle::BIRTH_REMINDER_DAYS,
            work_queue: Default::default(),
        }
    }
}

/// Everything a request handler may use: one pointer to [`Services`], so a clone is one
/// reference count. The router clones the state for every request (each layer and each
/// extractor that takes it), and a struct of a dozen `Arc`s cost as many atomic increments and
/// decrements, shared between the cores (issue #16: 3–5% of the server's CPU per lookup).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub engine: Arc<UploadEngine>,
    pub clock: Arc<dyn Clock>,
    pub lookups: LookupService,
    pub auth: Arc<Authenticator>,
    pub anomaly: Arc<AnomalyDetector>,
    /// Failed authentications per client address and credential (429, counted audit).
    pub auth_failures: Arc<cpis_auth::failure_throttle::FailureThrottle>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub config: Arc<ServerConfig>,
    pub progress: Arc<ProgressRegistry>,
    /// `POST /oauth2/token` (application-restricted clients).
    pub oauth: Arc<crate::routes::oauth::TokenService>,
}

impl AppState {
    /// Observes a webhook delivery's latency (commit to 2xx) in the metrics.
    pub fn delivery_observer(&self) -> impl Fn(chrono::Duration) + Send + Sync + 'static {
        let metrics = self.metrics.clone();
        move |age: chrono::Duration| {
            metrics
                .webhook_delivery_seconds
                .observe(age.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
        }
    }

    pub fn new(
        engine: Arc<UploadEngine>,
        lookups: LookupService,
        clock: Arc<dyn Clock>,
        auth: Arc<Authenticator>,
        anomaly: AnomalyDetector,
        config: ServerConfig,
    ) -> Self {
        AppState(Arc::new(Services {
            store: engine.store().clone(),
            engine,
            lookups,
            clock,
            auth,
            anomaly: Arc::new(anomaly),
            auth_failures: Arc::default(),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            config: Arc::new(config),
            progress: Arc::new(ProgressRegistry::default()),
            oauth: Arc::default(),
        }))
    }

    /// The configured FHIR base URL, if any.
    pub fn public_base_url(&self) -> Option<&str> {
        self.config.public_base_url.as_deref()
    }

    /// Sets the FHIR base URL when none was configured (the address the server listens on).
    pub fn with_default_base_url(mut self, base: String) -> Self {
        if self.config.public_base_url.is_none() {
            Arc::make_mut(&mut Arc::make_mut(&mut self.0).config).public_base_url = Some(base);
        }
        self
    }

    /// Sets the failed-authentication limits (`[auth_failures]`; defaults otherwise).
    pub fn with_auth_failure_policy(
        mut self,
        policy: cpis_auth::failure_throttle::FailurePolicy,
    ) -> Self {
        Arc::make_mut(&mut self.0).auth_failures =
            Arc::new(cpis_auth::failure_throttle::FailureThrottle::new(policy));
        self
    }

    /// Writes the audit entries of failed authentications that were counted rather than
    /// written one by one, for windows that have closed. `cpis serve` calls it every few
    /// seconds; each failure calls it too.
    pub fn write_counted_auth_failures(&self) {
        for counted in self.auth_failures.take_counted(self.clock.now()) {
            self.auth.audit_counted_failures(&counted);
        }
    }

    /// Where application-restricted clients' JWKS URLs may point (`[oauth_clients]`; https only
    /// by default).
    pub fn with_client_keys_policy(mut self, policy: cpis_auth::jwks::FetchPolicy) -> Self {
        Arc::make_mut(&mut self.0).oauth =
            Arc::new(crate::routes::oauth::TokenService::new(policy));
        self
    }
}
