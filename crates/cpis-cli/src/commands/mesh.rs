//! `cpis mesh outbox|handshake`: the MESH channel for operators (docs/MESH.md).

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum MeshCommand {
    /// List the MESH outbox, newest first: sent, waiting (with the last error) or given up.
    Outbox {
        /// How many messages to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only messages not sent yet (waiting or given up).
        #[arg(long)]
        unsent: bool,
    },
    /// Check the `[mesh]` configuration: authenticate to MESH and report the inbox size.
    Handshake,
}

pub fn run(global: &GlobalArgs, cmd: MeshCommand) -> Result<ExitCode> {
    let file = global.file()?;
    match cmd {
        MeshCommand::Outbox { limit, unsent } => {
            let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
            println!(
                "{:<10} {:<26} {:<12} {:<34} local id",
                "state", "queued", "to", "workflow"
            );
            for e in store.mesh_outbox(limit)? {
                let state = match (&e.sent_at, &e.dead_at) {
                    (Some(_), _) => "sent",
                    (None, Some(_)) => "given-up",
                    (None, None) => "waiting",
                };
                if unsent && state == "sent" {
                    continue;
                }
                println!(
                    "{state:<10} {:<26} {:<12} {:<34} {}",
                    e.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.recipient,
                    e.workflow_id,
                    e.local_id
                );
                if let (None, Some(err)) = (&e.sent_at, &e.last_error) {
                    println!("           after {} attempt(s): {err}", e.attempts);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Handshake => {
            let mesh = file
                .mesh
                .as_ref()
                .context("no [mesh] section in the configuration (--config FILE)")?;
            let client = cpis_mesh::MeshClient::new(mesh.client_config()?)?;
            client.handshake().context("MESH handshake")?;
            let waiting = client.inbox().context("MESH inbox")?.len();
            println!(
                "MESH mailbox {}: authenticated; {waiting} message(s) in the inbox",
                client.mailbox_id()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
