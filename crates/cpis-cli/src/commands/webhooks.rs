//! `cpis webhooks add|list|remove`: LA webhook endpoints.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_domain::{AuditEntry, AuditOutcome, OdsCode};
use cpis_store::Webhook;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Add a webhook for an LA; prints its signing secret once.
    Add {
        /// The LA's ODS code.
        la: String,
        /// https:// URL (http:// only for loopback testing).
        url: String,
    },
    /// List an LA's webhooks.
    List { la: String },
    /// Disable a webhook (its pending deliveries stop).
    Remove { la: String, id: String },
}

pub fn run(global: &GlobalArgs, cmd: WebhooksCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    let admin = super::operator_admin();
    let now = chrono::Utc::now();
    // Each change commits with its audit entry (one store transaction).
    let audit = |action: &str, detail: String| AuditEntry {
        time: now,
        actor: admin.actor().clone(),
        action: action.into(),
        subject_nhs: None,
        trace_id: None,
        outcome: AuditOutcome::Success,
        detail: Some(detail),
    };
    match cmd {
        WebhooksCommand::Add { la, url } => {
            let la = OdsCode::parse(&la).context("LA")?;
            anyhow::ensure!(
                store.local_authority(&la)?.is_some(),
                "{la} is not in the LA directory"
            );
            let loopback = url.starts_with("http://127.0.0.1")
                || url.starts_with("http://localhost")
                || url.starts_with("http://[::1]");
            anyhow::ensure!(
                url.starts_with("https://") || loopback,
                "webhook URLs must be https:// (http:// only on loopback)"
            );
            let secret = cpis_auth::secret::random();
            let hook = Webhook {
                id: uuid_like(),
                la: la.clone(),
                url: url.clone(),
                secret: secret.clone(),
                created_at: now,
            };
            store.add_webhook(
                &hook,
                &audit("admin.webhook.add", format!("webhook {} for {la}", hook.id)),
            )?;
            println!(
                "webhook {} for {la}\nsigning secret (shown once): {secret}",
                hook.id
            );
        }
        WebhooksCommand::List { la } => {
            let la = OdsCode::parse(&la).context("LA")?;
            for h in store.webhooks(&la)? {
                println!(
                    "{}  {}  added {}",
                    h.id,
                    h.url,
                    h.created_at.format("%Y-%m-%d")
                );
            }
        }
        WebhooksCommand::Remove { la, id } => {
            let la = OdsCode::parse(&la).context("LA")?;
            let entry = audit("admin.webhook.remove", format!("webhook {id} for {la}"));
            anyhow::ensure!(
                store.remove_webhook(&la, &id, now, &entry)?,
                "no active webhook {id} for {la}"
            );
            println!("removed webhook {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn uuid_like() -> String {
    let s = cpis_auth::secret::digest(&cpis_auth::secret::random());
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}
