//! The one composition root: everything a running cpis is made of, built in one place from
//! [`Settings`] — the HTTP application state, the lookup writer, the webhook delivery worker and
//! the MESH worker, all joined by one [`NotificationBus`] — and stopped in one place. `cpis serve`
//! builds its [`Application`] here, and so do the tests, so they exercise the production wiring.

use axum::Router;
use cpis_api::{AppState, ServerConfig};
use cpis_auth::failure_throttle::FailurePolicy;
use cpis_auth::jwks::FetchPolicy;
use cpis_auth::jwt::JwtVerifier;
use cpis_auth::oidc::OidcSignIn;
use cpis_auth::{Authenticator, LockoutPolicy};
use cpis_core::anomaly::{AnomalyDetector, AnomalyPolicy};
use cpis_core::bus::NotificationBus;
use cpis_core::delivery::{DeliveryWorker, RetryPolicy, Sender};
use cpis_core::mesh::{MeshSettings, MeshWorker};
use cpis_core::{LookupService, LookupSettings, UploadEngine};
use cpis_domain::attendance::AttendanceThresholds;
use cpis_domain::{Clock, VisibilityPolicy};
use cpis_web::OidcWeb;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpListener;

/// What a running cpis is configured with, already read and checked (the CLI reads it from
/// flags, the environment and the config file; tests write it).
pub struct Settings {
    pub server: ServerConfig,
    /// How long ended plans stay visible.
    pub visibility: VisibilityPolicy,
    /// When a child's attendance across settings is a pattern (`frequent-attendance`).
    pub attendance: AttendanceThresholds,
    pub anomaly: AnomalyPolicy,
    pub lockout: LockoutPolicy,
    pub auth_failures: FailurePolicy,
    /// Where application-restricted clients' JWKS URLs may point.
    pub client_keys: FetchPolicy,
    /// Bearer JWTs from the identity provider (`[oidc]` or NHS CIS2), when configured.
    pub identity_provider: Option<JwtVerifier>,
    /// Browser sign-in through that provider, when configured.
    pub sign_in: Option<OidcSignIn>,
    pub webhooks: RetryPolicy,
    /// Where webhook deliveries are sent; `None` runs no delivery worker.
    pub webhook_sender: Option<Box<dyn Sender>>,
    /// cpis's MESH mailbox; `None` runs no MESH worker.
    pub mesh: Option<(cpis_mesh::MeshClient, MeshSettings)>,
}

impl Settings {
    /// The defaults, with `server` as given: no identity provider, no webhook delivery, no MESH.
    pub fn new(server: ServerConfig) -> Self {
        Settings {
            server,
            visibility: VisibilityPolicy::default(),
            attendance: AttendanceThresholds::default(),
            anomaly: AnomalyPolicy::default(),
            lockout: LockoutPolicy::default(),
            auth_failures: FailurePolicy::default(),
            client_keys: FetchPolicy::default(),
            identity_provider: None,
            sign_in: None,
            webhooks: RetryPolicy::default(),
            webhook_sender: None,
            mesh: None,
        }
    }
}

/// A built cpis: the application state (for the router) and its background workers. Dropping
/// it stops the workers.
pub struct Application {
    state: AppState,
    /// Browser sign-in through the identity provider, when configured.
    sign_in: Option<Arc<OidcWeb>>,
    bus: Arc<NotificationBus>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Application {
    /// Wires everything to one store (the engine's) and one clock, and starts the workers.
    pub fn build(engine: UploadEngine, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let bus = Arc::new(NotificationBus::new());
        let engine = Arc::new(engine.with_bus(bus.clone()));
        let store = engine.store().clone();
        let auth = Arc::new(Authenticator::new(
            store.clone(),
            clock.clone(),
            settings.identity_provider,
            settings.lockout,
        ));
        let lookups = LookupService::start_with_settings(
            store.clone(),
            clock.clone(),
            LookupSettings {
                visibility: settings.visibility,
                attendance: settings.attendance,
            },
            bus.clone(),
        );
        let state = AppState::new(
            engine.clone(),
            lookups,
            clock.clone(),
            auth,
            AnomalyDetector::new(settings.anomaly),
            settings.server,
        )
        .with_auth_failure_policy(settings.auth_failures)
        .with_client_keys_policy(settings.client_keys);
        let sign_in = settings.sign_in.map(|sign_in| {
            tracing::info!("web sign-in through the identity provider is offered");
            Arc::new(OidcWeb::new(sign_in))
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        // The outbox's push side: webhook deliveries (several servers share the queue safely).
        if let Some(sender) = settings.webhook_sender {
            let worker = DeliveryWorker::new(store, clock.clone(), settings.webhooks, sender)
                .with_bus(bus.clone())
                .on_delivered(state.delivery_observer());
            workers.push(worker.spawn(stop.clone()));
        }
        // The MESH channel: LA uploads from cpis's mailbox, reports and notifications to theirs.
        if let Some((client, mesh)) = settings.mesh {
            tracing::info!(mailbox = %client.mailbox_id(), "MESH worker starting");
            let worker = MeshWorker::new(client, engine, clock, mesh)
                .with_bus(bus.clone())
                .on_failure(state.mesh_failure_observer());
            workers.push(worker.spawn(stop.clone()));
        }
        Application {
            state,
            sign_in,
            bus,
            stop,
            workers,
        }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The bus every notification-creating commit is published on.
    pub fn bus(&self) -> &Arc<NotificationBus> {
        &self.bus
    }

    /// The whole HTTP application.
    pub fn router(&self) -> Router {
        crate::router(self.state.clone(), self.sign_in.clone())
    }

    /// Sets the FHIR base URL when none was configured (the address the server listens on).
    pub fn with_default_base_url(mut self, base: String) -> Self {
        self.state = self.state.clone().with_default_base_url(base);
        self
    }

    /// Serves on `listener` until `shutdown` resolves and in-flight requests are drained, then
    /// stops the workers.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = crate::serve(listener, self.state.clone(), self.router(), shutdown).await;
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .map_err(std::io::Error::other)?;
        served
    }

    /// Stops the workers and waits for them: each finishes the step it is in (nothing is
    /// acknowledged before it is durable, so stopping anywhere loses nothing).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Application {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes workers waiting for work, so they see `stop` at once.
        self.bus.publish();
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                tracing::error!("a background worker panicked");
            }
        }
    }
}
