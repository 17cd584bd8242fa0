use crate::config::{upload_settings, GlobalArgs};
use anyhow::{Context, Result};
use cpis_domain::{OdsCode, SystemClock};
use cpis_server::{AppState, LaTokens, ServerConfig};
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

    let mut tokens = LaTokens::default();
    for (la, token) in &file.la_tokens {
        tokens.insert(
            token,
            OdsCode::parse(la).with_context(|| format!("la_tokens: {la}"))?,
        );
    }
    for pair in &args.la_tokens {
        let (la, token) = pair
            .split_once('=')
            .context("--la-token must be ODS=TOKEN")?;
        anyhow::ensure!(!token.trim().is_empty(), "--la-token {la}: empty token");
        tokens.insert(
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
            tokens.insert(&format!("demo-{}", la.ods_code), la.ods_code.clone());
        }
        eprintln!("demo mode: every LA has the API token demo-<ODS code>, e.g. 'Authorization: Bearer demo-E08000026' for Coventry");
    }
    if tokens.is_empty() {
        tracing::warn!("no LA API tokens configured: the upload API will refuse every caller");
    }

    let config = ServerConfig {
        max_upload_bytes: args
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(ServerConfig::default().max_upload_bytes),
        spool_dir: file.spool_dir.clone(),
    };
    let bind = args
        .bind
        .or(file.bind)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let state = AppState::new(Arc::new(engine), Arc::new(SystemClock), tokens, config);

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
