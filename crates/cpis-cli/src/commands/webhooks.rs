//! `cpis webhooks add|list|remove`: LA webhook endpoints.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_domain::{AuditEntry, OdsCode};
use cpis_store::Webhook;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Add a webhook for an LA; prints its signing secret once.
    Add {
        /// The LA's ODS code.
        la: String,
        /// https:// URL whose host resolves to a public address (internal ones only when
        /// [webhook_destinations] allow names them; http:// only to 127.0.0.1, [::1] or
        /// localhost with allow_http_loopback = true).
        url: String,
    },
    /// List an LA's webhooks.
    List {
        /// The LA's ODS code.
        la: String,
    },
    /// Disable a webhook (its pending deliveries stop).
    Remove {
        /// The LA's ODS code.
        la: String,
        /// The webhook's id, as `webhooks list` prints it.
        id: String,
    },
}

pub fn run(global: &GlobalArgs, cmd: WebhooksCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    let admin = super::operator_admin();
    let now = chrono::Utc::now();
    // Each change commits with its audit entry (one store transaction).
    let audit = |action: &str, detail: String| {
        AuditEntry::new(now, admin.actor().clone(), action, None).detail(detail)
    };
    match cmd {
        WebhooksCommand::Add { la, url } => {
            let la = OdsCode::parse(&la).context("LA")?;
            anyhow::ensure!(
                store.local_authority(&la)?.is_some(),
                "{la} is not in the LA directory"
            );
            let policy = file.webhook_destinations.clone().unwrap_or_default();
            let url = policy
                .check_url(&url)
                .map_err(|e| anyhow::anyhow!("webhook URL refused: {e}"))?
                .to_string();
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
                &audit(
                    "admin.webhook.add",
                    format!("webhook {} for {la} to {}", hook.id, destination(&url)),
                ),
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
            let to = store
                .webhooks(&la)?
                .into_iter()
                .find(|h| h.id == id)
                .map_or_else(
                    || "an unknown destination".to_owned(),
                    |h| destination(&h.url),
                );
            let entry = audit(
                "admin.webhook.remove",
                format!("webhook {id} for {la} to {to}"),
            );
            anyhow::ensure!(
                store.remove_webhook(&la, &id, now, &entry)?,
                "no active webhook {id} for {la}"
            );
            println!("removed webhook {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The destination a webhook change is audited with: scheme, host and port (never the path or
/// query, which may carry a receiver's own token).
fn destination(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "an unreadable URL".to_owned(),
        |u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        },
    )
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
