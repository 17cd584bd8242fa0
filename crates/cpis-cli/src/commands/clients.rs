//! `cpis clients add|list`: application-restricted clients of `POST /oauth2/token` (NHS
//! API-platform-style signed-JWT client credentials, docs/SECURITY.md). Each registration is
//! written with its audit entry (`admin.client.add`) in one store transaction, as `cpis users`
//! does. The client acts as the system identity `client:<client id>`: `cpis users disable
//! client:<client id>` stops it.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_auth::client_credentials::{self, NewClient};
use cpis_domain::{OdsCode, Permissions};
use cpis_store::ClientKeys;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register a client: its organisation, permissions and public keys (a JWKS file, kept in
    /// the database, or a JWKS URL, fetched when needed).
    Add {
        /// The client id: the `iss` and `sub` of the client's signed assertions.
        client_id: String,
        /// Organisation ODS code (an LA for uploads and notifications).
        #[arg(long)]
        org: String,
        /// Permissions, space- or comma-separated (e.g. "la:upload la:notifications").
        #[arg(long)]
        permissions: String,
        /// Name shown in the audit [default: the client id].
        #[arg(long)]
        name: Option<String>,
        /// The client's public keys (JWKS; every key RSA with a `kid`).
        #[arg(
            long,
            conflicts_with = "jwks_url",
            required_unless_present = "jwks_url"
        )]
        jwks_file: Option<PathBuf>,
        /// The client's JWKS URL (https).
        #[arg(long)]
        jwks_url: Option<String>,
        /// Let this client's application-only tokens make clinical lookups (CareTeam,
        /// AuditEvent). Refused by default: unattended access is not a suitable pattern.
        #[arg(long)]
        allow_unattended_lookups: bool,
    },
    /// List registered clients.
    List,
}

pub fn run(global: &GlobalArgs, cmd: ClientsCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    let store = store.as_ref();
    let now = chrono::Utc::now();
    match cmd {
        ClientsCommand::Add {
            client_id,
            org,
            permissions,
            name,
            jwks_file,
            jwks_url,
            allow_unattended_lookups,
        } => {
            let permissions = Permissions::parse(&permissions)?;
            anyhow::ensure!(!permissions.is_empty(), "give at least one permission");
            let organisation = OdsCode::parse(&org).context("--org")?;
            let keys = match (jwks_file, jwks_url) {
                (Some(f), None) => ClientKeys::Jwks(
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?,
                ),
                (None, Some(u)) => ClientKeys::JwksUrl(u),
                _ => anyhow::bail!("give --jwks-file or --jwks-url"),
            };
            let keys_said = match &keys {
                ClientKeys::Jwks(_) => "a JWKS file".to_owned(),
                ClientKeys::JwksUrl(u) => format!("JWKS URL {u}"),
            };
            let entry = super::users::audit(
                "admin.client.add",
                format!(
                    "registered client {client_id} at {organisation} with {permissions}, {keys_said}{}",
                    if allow_unattended_lookups {
                        ", unattended lookups allowed"
                    } else {
                        ""
                    }
                ),
                now,
            );
            let policy = file.oauth_clients.unwrap_or_default();
            let client = client_credentials::register_audited(
                store,
                NewClient {
                    display_name: name.unwrap_or_else(|| client_id.clone()),
                    client_id,
                    organisation,
                    permissions,
                    keys,
                    allow_unattended_lookups,
                },
                &policy,
                now,
                &entry,
            )?;
            println!("registered client {}", client.client_id);
        }
        ClientsCommand::List => {
            println!(
                "{:<32} {:<10} {:<10} {:<9} keys",
                "client id", "org", "lookups", "state"
            );
            for c in store.oauth_clients()? {
                let user = store.user_by_id(&c.user_id)?;
                println!(
                    "{:<32} {:<10} {:<10} {:<9} {}",
                    c.client_id,
                    user.as_ref()
                        .map_or("?".into(), |u| u.organisation.to_string()),
                    if c.allow_unattended_lookups {
                        "allowed"
                    } else {
                        "refused"
                    },
                    match &user {
                        Some(u) if u.disabled => "disabled",
                        Some(_) => "active",
                        None => "?",
                    },
                    match &c.keys {
                        ClientKeys::Jwks(_) => "JWKS (registered)".to_owned(),
                        ClientKeys::JwksUrl(u) => u.clone(),
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
