use crate::config::{upload_settings, GlobalArgs};
use anyhow::{Context, Result};
use cpis_auth::jwt::{JwtConfig, JwtVerifier};
use cpis_auth::oidc::OidcSignIn;
use cpis_auth::LockoutPolicy;
use cpis_domain::SystemClock;
use cpis_server::{Application, ServerConfig, Settings};
use cpis_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

pub const DEMO_DATABASE: &str = "sqlite://cpis-demo.db";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Load the bundled synthetic demo data and demo identities (see README). Uses
    /// `sqlite://cpis-demo.db` unless a database is named.
    #[arg(long)]
    demo: bool,
    /// PostgreSQL read replica (`postgres://…`) for read-only queries made outside a
    /// transaction: notification lists, upload report rows, the AuditEvent history, directory
    /// reads, audit search. Writes and lookups stay on the primary. Ignored on SQLite.
    #[arg(long, env = "CPIS_READ_DATABASE_URL")]
    read_database: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CPIS_BIND")]
    bind: Option<String>,
    /// Largest upload accepted, in bytes [default: 268435456].
    #[arg(long, env = "CPIS_MAX_UPLOAD_BYTES")]
    max_upload_bytes: Option<u64>,
    /// Share of an LA's open plans a full upload may end before it is held (0–1) [default: 0.5].
    #[arg(long, env = "CPIS_MASS_END_THRESHOLD")]
    mass_end_threshold: Option<f64>,
    /// TLS certificate chain (PEM). With --tls-key, serves HTTPS (rustls).
    #[arg(long, env = "CPIS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "CPIS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    // Lines for people on standard error; with `--log-format json` only log lines go there.
    let plain_stderr = global.log_format == crate::logging::LogFormat::Text;
    let file = global.file()?;
    let default_db = if args.demo {
        DEMO_DATABASE
    } else {
        "sqlite://cpis.db"
    };
    let url = global.database_url(&file, default_db);
    let replica = args
        .read_database
        .clone()
        .or_else(|| file.read_database_url.clone())
        .filter(|r| !r.trim().is_empty());
    // The database first: a SQLite path in a folder that does not exist is refused as such,
    // before the spool folder beside it is made.
    let engine = super::open_engine_with_replica(
        &url,
        replica.as_deref(),
        cpis_store::IfMissing::Create,
        upload_settings(&file, args.mass_end_threshold)?,
    )?;
    let spool_dir = super::install_spool_dir(&url, file.spool_dir.as_deref())?;
    if let Some(r) = &replica {
        if engine.store().backend() == "postgres" {
            tracing::info!(replica = %super::redact_url(r), "reads outside transactions may use the read replica");
        }
    }
    let store: Arc<dyn Store> = engine.store().clone();

    if args.demo {
        let loaded = cpis_core::demo::load(&engine)?;
        let identities = cpis_core::demo::create_identities(store.as_ref())?;
        tracing::info!(
            local_authorities = loaded.local_authorities,
            care_settings = loaded.care_settings,
            demographics = loaded.demographics,
            uploads_applied = loaded.uploads_applied,
            uploads_already_present = loaded.uploads_already_present,
            identities_created = identities,
            "demo data loaded"
        );
        let banner = format!(
            "demo mode: API tokens demo-<LA ODS> (Coventry: demo-E08000026), demo-<care setting ODS> \
             (an emergency department: demo-RDEMO01), demo-silent-<care setting ODS>, demo-admin, demo-auditor; \
             logins demo.clinician, demo.gp, demo.coventry, demo.admin, demo.auditor with password {}",
            cpis_core::demo::DEMO_PASSWORD
        );
        // With JSON logs every line on standard error is a JSON object: the banner is logged.
        if plain_stderr {
            eprintln!("{banner}");
        } else {
            tracing::info!("{banner}");
        }
    }

    let (jwt, oidc_sign_in) = match (&file.oidc, &file.cis2) {
        (Some(_), Some(_)) => {
            anyhow::bail!("[oidc] and [cis2] are alternatives: configure one identity provider")
        }
        (None, Some(c)) => {
            let (verifier, sign_in) = cis2_provider(c).context("[cis2]")?;
            (Some(verifier), sign_in)
        }
        (None, None) => (None, None),
        (Some(o), None) => {
            let jwks_json = std::fs::read_to_string(&o.jwks_file)
                .with_context(|| format!("reading JWKS {}", o.jwks_file.display()))?;
            let provider = JwtConfig {
                jwks_json,
                issuer: o.issuer.clone(),
                audience: o.audience.clone(),
                org_claim: o.org_claim.clone().unwrap_or_else(|| "ods".into()),
                permissions_claim: o
                    .permissions_claim
                    .clone()
                    .unwrap_or_else(|| "cpis_permissions".into()),
            };
            let sign_in = o
                .sign_in
                .as_ref()
                .map(|c| OidcSignIn::new(c.client(), &provider))
                .transpose()
                .context("[oidc.sign_in]")?;
            (Some(JwtVerifier::new(provider)?), sign_in)
        }
    };
    let config = ServerConfig {
        max_upload_bytes: args
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(ServerConfig::default().max_upload_bytes),
        spool_dir: Some(spool_dir),
        public_base_url: file.public_base_url.clone(),
        fhir_canonical_base: file.fhir_canonical_base.clone(),
        birth_reminder_days: file
            .birth_reminder_days
            .unwrap_or(cpis_core::lifecycle::BIRTH_REMINDER_DAYS),
        work_queue: {
            let policy = file.work_queue.unwrap_or_default();
            policy.validate().map_err(anyhow::Error::msg)?;
            policy
        },
    };
    let bind = args
        .bind
        .or(file.bind.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let mesh = match &file.mesh {
        None => None,
        Some(m) => Some((
            cpis_mesh::MeshClient::new(m.client_config()?).context("setting up the MESH client")?,
            m.settings(),
        )),
    };
    let settings = Settings {
        visibility: file.visibility(),
        attendance: file.attendance()?,
        anomaly: file.anomaly.unwrap_or_default(),
        lockout: LockoutPolicy::default(),
        auth_failures: file.auth_failures.unwrap_or_default(),
        client_keys: file.oauth_clients.unwrap_or_default(),
        identity_provider: jwt,
        sign_in: oidc_sign_in,
        webhooks: file.webhooks.unwrap_or_default(),
        webhook_sender: Some(Box::new(cpis_core::delivery::HttpSender::new(
            file.webhook_destinations.clone().unwrap_or_default(),
        ))),
        mesh,
        ..Settings::new(config)
    };
    let app = Application::build(engine, Arc::new(SystemClock), settings);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr: std::net::SocketAddr = match bind.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(&bind)
                .await?
                .next()
                .with_context(|| format!("cannot resolve {bind}"))?,
        };
        match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .context("loading the TLS certificate and key")?;
                let handle = axum_server::Handle::new();
                let h = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    h.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
                });
                let app = with_base_url(app, &format!("https://{addr}"), addr);
                tracing::info!(%addr, database = %super::redact_url(&url), "cpis listening (TLS)");
                if plain_stderr {
                    eprintln!("cpis listening on https://{addr}");
                }
                cpis_server::spawn_housekeeping(app.state());
                let served = axum_server::bind_rustls(addr, tls)
                    .handle(handle)
                    .serve(
                        app.router()
                            .into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .await;
                tokio::task::spawn_blocking(move || app.stop()).await?;
                served?;
            }
            _ => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {bind}"))?;
                let addr = listener.local_addr()?;
                let app = with_base_url(app, &format!("http://{addr}"), addr);
                tracing::info!(%addr, database = %super::redact_url(&url), "cpis listening");
                if plain_stderr {
                    eprintln!("cpis listening on http://{addr}");
                }
                app.serve(listener, shutdown_signal()).await?;
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    tracing::info!("cpis stopped");
    Ok(ExitCode::SUCCESS)
}

/// FHIR `fullUrl`s use `public_base_url`, else the address cpis listens on (never a request's
/// `Host`). An unspecified address (0.0.0.0) cannot be reached by clients: say so.
fn with_base_url(app: Application, listening: &str, addr: std::net::SocketAddr) -> Application {
    if app.state().public_base_url().is_none() {
        if addr.ip().is_unspecified() {
            tracing::warn!(base = listening, "public_base_url is not set and cpis listens on every address: FHIR fullUrls use {listening}, which clients cannot reach; set public_base_url");
        } else {
            tracing::info!(
                base = listening,
                "public_base_url is not set: FHIR fullUrls use the listening address"
            );
        }
    }
    app.with_default_base_url(listening.to_owned())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// NHS CIS2: discovers the provider, fetches its keys (refetched on an unknown `kid`), and reads
/// identities from the selected role (`cpis_auth::cis2`); with `[cis2.sign_in]`, the web sign-in
/// through the discovered endpoints.
fn cis2_provider(c: &crate::config::Cis2Config) -> Result<(JwtVerifier, Option<OidcSignIn>)> {
    use cpis_auth::jwks::{discover, FetchPolicy, KeySet};
    let policy = FetchPolicy {
        allow_http_loopback: c.allow_http_loopback,
    };
    let meta = discover(&c.issuer, &policy).context("OpenID Connect discovery")?;
    let keys = KeySet::from_url(&meta.jwks_uri, policy).context("the provider's keys")?;
    let rules = cpis_auth::cis2::Cis2Rules {
        min_assurance_for_lookups: c
            .min_assurance_for_lookups
            .unwrap_or(cpis_auth::cis2::Cis2Rules::default().min_assurance_for_lookups),
    };
    let verifier = JwtVerifier::with_keys(
        JwtConfig {
            jwks_json: String::new(),
            issuer: meta.issuer.clone(),
            audience: c.audience.clone().unwrap_or_else(|| c.client_id.clone()),
            org_claim: String::new(),
            permissions_claim: String::new(),
        },
        Arc::new(keys),
    )
    .cis2(rules, meta.userinfo_endpoint.clone(), policy);
    tracing::info!(keys = %meta.jwks_uri, "NHS CIS2 identity provider discovered");
    let sign_in = match &c.sign_in {
        None => None,
        Some(s) => {
            let secret = std::env::var("CPIS_OIDC_CLIENT_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| s.client_secret.clone());
            let client = cpis_auth::oidc::OidcClientConfig {
                authorization_endpoint: meta
                    .authorization_endpoint
                    .clone()
                    .context("discovery names no authorization_endpoint")?,
                token_endpoint: meta
                    .token_endpoint
                    .clone()
                    .context("discovery names no token_endpoint")?,
                client_id: c.client_id.clone(),
                client_secret: secret,
                redirect_uri: s.redirect_uri.clone(),
                scope: s
                    .scope
                    .clone()
                    .unwrap_or_else(|| "openid profile nationalrbacaccess selectedrole".into()),
                label: s
                    .label
                    .clone()
                    .unwrap_or_else(|| "Sign in with NHS Care Identity".into()),
            };
            let id_tokens = verifier.for_audience(&c.client_id);
            Some(OidcSignIn::with_verifier(client, id_tokens).context("[cis2.sign_in]")?)
        }
    };
    Ok((verifier, sign_in))
}
