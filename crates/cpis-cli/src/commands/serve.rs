use crate::config::{upload_settings, GlobalArgs};
use anyhow::{Context, Result};
use cpis_core::LookupService;
use cpis_domain::{Accessor, OdsCode, SystemClock};
use cpis_server::{AppState, HealthIdentity, ServerConfig, StaticTokens};
use cpis_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

pub const DEMO_DATABASE: &str = "sqlite://cpis-demo.db";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Load the bundled synthetic demo data and give every LA a demo token `demo-<ODS code>`.
    /// Uses `sqlite://cpis-demo.db` unless a database is named.
    #[arg(long)]
    demo: bool,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CPIS_BIND")]
    bind: Option<String>,
    /// Static LA API token, `ODS=TOKEN` (repeatable; temporary LA authentication).
    #[arg(long = "la-token", env = "CPIS_LA_TOKENS", value_delimiter = ',')]
    la_tokens: Vec<String>,
    /// Largest upload accepted, in bytes [default: 268435456].
    #[arg(long, env = "CPIS_MAX_UPLOAD_BYTES")]
    max_upload_bytes: Option<u64>,
    /// Share of an LA's open plans a full upload may end before it is held (0–1) [default: 0.5].
    #[arg(long, env = "CPIS_MASS_END_THRESHOLD")]
    mass_end_threshold: Option<f64>,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let file = global.file()?;
    let default_db = if args.demo {
        DEMO_DATABASE
    } else {
        "sqlite://cpis.db"
    };
    let url = global.database_url(&file, default_db);
    let engine = super::open_engine(&url, upload_settings(&file, args.mass_end_threshold)?)?;

    let mut tokens = StaticTokens::default();
    for (la, token) in &file.la_tokens {
        tokens.insert_la(
            token,
            OdsCode::parse(la).with_context(|| format!("la_tokens: {la}"))?,
        );
    }
    for pair in &args.la_tokens {
        let (la, token) = pair
            .split_once('=')
            .context("--la-token must be ODS=TOKEN")?;
        anyhow::ensure!(!token.trim().is_empty(), "--la-token {la}: empty token");
        tokens.insert_la(
            token.trim(),
            OdsCode::parse(la).with_context(|| format!("--la-token {la}"))?,
        );
    }
    if args.demo {
        let loaded = cpis_core::demo::load(&engine)?;
        tracing::info!(
            local_authorities = loaded.local_authorities,
            care_settings = loaded.care_settings,
            demographics = loaded.demographics,
            uploads_applied = loaded.uploads_applied,
            uploads_already_present = loaded.uploads_already_present,
            "demo data loaded"
        );
        for la in engine.store().local_authorities()? {
            tokens.insert_la(&format!("demo-{}", la.ods_code), la.ods_code.clone());
        }
        for line in cpis_core::demo::CARE_SETTINGS.lines().skip(1) {
            let Some(code) = line.split(',').next().and_then(|c| OdsCode::parse(c).ok()) else {
                continue;
            };
            let Some(setting) = engine.store().care_setting(&code)? else {
                continue;
            };
            let accessor = |suffix: &str, name: &str| Accessor {
                user_id: format!("demo-{suffix}-{}", setting.ods_code),
                user_name: name.to_owned(),
                role: "Clinician".to_owned(),
                organisation: setting.ods_code.clone(),
                organisation_name: setting.name.clone(),
                setting_type: Some(setting.setting_type),
            };
            tokens.insert_health(
                &format!("demo-{}", setting.ods_code),
                HealthIdentity {
                    accessor: accessor("clinician", "Demo Clinician"),
                    may_notify: true,
                },
            );
            tokens.insert_health(
                &format!("demo-silent-{}", setting.ods_code),
                HealthIdentity {
                    accessor: accessor("viewer", "Demo Silent Viewer"),
                    may_notify: false,
                },
            );
        }
        eprintln!("demo mode: LA token demo-<LA ODS code> (Coventry: demo-E08000026); clinician token demo-<care setting ODS code> (an emergency department: demo-RDEMO01), silent viewer demo-silent-<code>");
    }
    for user in &file.health_users {
        let org = OdsCode::parse(&user.organisation)
            .with_context(|| format!("health_users: {}", user.user_id))?;
        let setting = engine.store().care_setting(&org)?.with_context(|| {
            format!(
                "health_users: {}: {org} is not in the care setting directory",
                user.user_id
            )
        })?;
        let notify = user.permissions.iter().any(|p| p == "cpis:view-notify");
        let silent = user.permissions.iter().any(|p| p == "cpis:view-silent");
        anyhow::ensure!(
            notify || silent,
            "health_users: {}: needs cpis:view-notify or cpis:view-silent",
            user.user_id
        );
        tokens.insert_health(
            &user.token,
            HealthIdentity {
                accessor: Accessor {
                    user_id: user.user_id.clone(),
                    user_name: user.user_name.clone(),
                    role: user.role.clone(),
                    organisation: setting.ods_code,
                    organisation_name: setting.name,
                    setting_type: Some(setting.setting_type),
                },
                may_notify: notify,
            },
        );
    }
    if tokens.is_empty() {
        tracing::warn!("no API tokens configured: the API will refuse every caller");
    }

    let config = ServerConfig {
        max_upload_bytes: args
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(ServerConfig::default().max_upload_bytes),
        spool_dir: file.spool_dir.clone(),
        public_base_url: file.public_base_url.clone(),
    };
    let bind = args
        .bind
        .or(file.bind.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let store: Arc<dyn Store> = engine.store().clone();
    let lookups = LookupService::start(store, Arc::new(SystemClock), file.visibility());
    let state = AppState::new(
        Arc::new(engine),
        lookups,
        Arc::new(SystemClock),
        tokens,
        config,
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, database = %super::redact_url(&url), "cpis listening");
        eprintln!("cpis listening on http://{addr}");
        cpis_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("cpis stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
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
