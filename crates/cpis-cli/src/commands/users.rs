//! `cpis users add|list|disable|enable|password|token`: identities for the embedded default.
//! Every change is written to the audit as the operator running the command, in the same store
//! transaction as the change itself: a change is never stored without its audit entry.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_auth::users::{self, NewUser};
use cpis_domain::{AuditActor, AuditEntry, OdsCode, Permissions};
use cpis_store::UserKind;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a person (password login) or a system (API tokens only).
    Add {
        /// Login name (people) or system name; unique.
        username: String,
        /// Organisation ODS code (an LA, a care setting, or the service's own).
        #[arg(long)]
        org: String,
        /// Permissions, space- or comma-separated: cpis:view-notify cpis:view-silent la:upload
        /// la:notifications admin auditor.
        #[arg(long)]
        permissions: String,
        /// Name shown in audit and access history [default: the username].
        #[arg(long)]
        name: Option<String>,
        /// Job role shown in access history (e.g. Clinician, Social worker).
        #[arg(long, default_value = "User")]
        role: String,
        /// A system (no password; authenticates with API tokens).
        #[arg(long)]
        system: bool,
        /// Read the password from the first line of standard input (people only).
        #[arg(long, conflicts_with = "system")]
        password_stdin: bool,
    },
    /// List users and systems.
    List,
    /// Disable an account (its tokens and sessions stop working).
    Disable {
        /// The account's username.
        username: String,
    },
    /// Enable a disabled account.
    Enable {
        /// The account's username.
        username: String,
    },
    /// Set a password, read from the first line of standard input (also clears a lockout).
    Password {
        /// The account's username.
        username: String,
    },
    /// Issue a new API token; it is printed once and only its digest is kept.
    Token {
        /// The account (person or system) the token acts as.
        username: String,
        /// A name for the token, recorded in the audit (e.g. where it will be used).
        #[arg(long, default_value = "cli")]
        label: String,
        /// Days until the token expires [default: never].
        #[arg(long)]
        expires_days: Option<i64>,
    },
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The audit entry of a change, with the operator running the command as the actor. It is
/// written in the same transaction as the change (`users::*_audited`).
pub(crate) fn audit(
    action: &str,
    detail: String,
    now: chrono::DateTime<chrono::Utc>,
) -> AuditEntry {
    let who = super::upload::operator_name();
    let actor = AuditActor {
        id: format!("operator:{who}"),
        name: who,
        organisation: Some(cpis_core::demo::OPERATIONS_ORG.into()),
        role: "Operator".into(),
    };
    // No request, so no trace id: the operator's command is the whole trace.
    AuditEntry::new(now, actor, action, None).detail(detail)
}

pub fn run(global: &GlobalArgs, cmd: UsersCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    let store = store.as_ref();
    let now = chrono::Utc::now();
    match cmd {
        UsersCommand::Add {
            username,
            org,
            permissions,
            name,
            role,
            system,
            password_stdin,
        } => {
            let permissions = Permissions::parse(&permissions)?;
            anyhow::ensure!(!permissions.is_empty(), "give at least one permission");
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let kind = if system {
                UserKind::System
            } else {
                UserKind::User
            };
            let organisation = OdsCode::parse(&org).context("--org")?;
            let entry = audit(
                "admin.user.add",
                format!(
                    "added {username} ({}) at {organisation} with {permissions}",
                    kind.code()
                ),
                now,
            );
            let user = users::add_audited(
                store,
                NewUser {
                    display_name: name.unwrap_or_else(|| username.clone()),
                    username,
                    kind,
                    organisation,
                    role,
                    permissions,
                    password,
                },
                now,
                &entry,
            )?;
            println!("added {} ({})", user.username, user.id);
        }
        UsersCommand::List => {
            println!(
                "{:<32} {:<7} {:<10} {:<9} permissions",
                "username", "kind", "org", "state"
            );
            for u in store.list_users()? {
                let state = if u.disabled {
                    "disabled"
                } else if u.locked_until.is_some_and(|t| t > now) {
                    "locked"
                } else {
                    "active"
                };
                println!(
                    "{:<32} {:<7} {:<10} {:<9} {}",
                    u.username,
                    u.kind.code(),
                    u.organisation,
                    state,
                    u.permissions
                );
            }
        }
        UsersCommand::Disable { username } => {
            let entry = audit("admin.user.disable", format!("disabled {username}"), now);
            users::set_disabled_audited(store, &username, true, now, &entry)?;
            println!("disabled {username}");
        }
        UsersCommand::Enable { username } => {
            let entry = audit("admin.user.enable", format!("enabled {username}"), now);
            users::set_disabled_audited(store, &username, false, now, &entry)?;
            println!("enabled {username}");
        }
        UsersCommand::Password { username } => {
            let password = read_password()?;
            let entry = audit(
                "admin.user.password",
                format!("set the password of {username}"),
                now,
            );
            users::set_password_audited(store, &username, &password, now, &entry)?;
            println!("password set for {username}");
        }
        UsersCommand::Token {
            username,
            label,
            expires_days,
        } => {
            let entry = audit(
                "admin.token.issue",
                format!("issued token '{label}' for {username}"),
                now,
            );
            let token = users::issue_token_audited(
                store,
                &username,
                &label,
                expires_days.map(chrono::Duration::days),
                now,
                &entry,
            )?;
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
