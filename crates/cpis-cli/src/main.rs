//! `cpis`: the Child Protection – Information Sharing service and its operator tools.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

// mimalloc rather than the system allocator: a busy server's lookups spent about a quarter of
// their CPU in glibc malloc/free (BENCHMARKS.md, durable lookups).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod config;
mod logging;
mod mesh_config;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cpis", version, about = "Child Protection – Information Sharing service", long_about = None)]
struct Cli {
    #[command(flatten)]
    global: config::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(commands::serve::Args),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Upload an LA file (cpis-upload/1) straight into the database, with a progress bar.
    /// Exit status: 0 all loaded (or this same file was already loaded), 1 refused (CPF01, CPF04,
    /// CPF05, CPF06), 2 partly loaded or held for confirmation, 3 a duplicate file id with
    /// different content (nothing applied).
    Upload(commands::upload::Args),
    /// Apply an upload that was held for confirmation by the mass-ending guard.
    UploadConfirm(commands::upload::ConfirmArgs),
    /// Look a child up as an operator (silent: records an access, notifies nobody).
    Lookup(commands::lookup::Args),
    /// Print an upload's report (summary, or the per-record CSV).
    Report(commands::upload::ReportArgs),
    /// Load the demographics index (PDS stand-in) from a CSV extract.
    #[command(subcommand)]
    Demographics(commands::reference::DemographicsCommand),
    /// Load the local authority and care setting directories from CSV.
    #[command(subcommand)]
    Directory(commands::reference::DirectoryCommand),
    /// Load the bundled synthetic demo data into the database.
    #[command(subcommand)]
    Demo(commands::reference::DemoCommand),
    /// Manage users, systems and API tokens.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Register application-restricted clients of POST /oauth2/token (signed-JWT client credentials).
    #[command(subcommand)]
    Clients(commands::clients::ClientsCommand),
    /// Verify or search the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Manage LA webhook endpoints for notification delivery.
    #[command(subcommand)]
    Webhooks(commands::webhooks::WebhooksCommand),
    /// The MESH channel: the outbox, and a check of the `[mesh]` configuration.
    #[command(subcommand)]
    Mesh(commands::mesh::MeshCommand),
    /// Delete plans past their visibility window (retention); `--dry-run` only reports.
    Purge(commands::ops::PurgeArgs),
    /// Copy the embedded SQLite database to a file while cpis runs (online backup API).
    Backup(commands::ops::BackupArgs),
    /// Measure upload throughput on synthetic data.
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.global.log, cli.global.log_format);
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(&cli.global, args),
        Command::Migrate => commands::reference::migrate(&cli.global),
        Command::Upload(args) => commands::upload::run(&cli.global, args),
        Command::UploadConfirm(args) => commands::upload::confirm(&cli.global, args),
        Command::Lookup(args) => commands::lookup::run(&cli.global, args),
        Command::Report(args) => commands::upload::report(&cli.global, args),
        Command::Demographics(cmd) => commands::reference::demographics(&cli.global, cmd),
        Command::Directory(cmd) => commands::reference::directory(&cli.global, cmd),
        Command::Demo(cmd) => commands::reference::demo(&cli.global, cmd),
        Command::Users(cmd) => commands::users::run(&cli.global, cmd),
        Command::Clients(cmd) => commands::clients::run(&cli.global, cmd),
        Command::Audit(cmd) => commands::audit::run(&cli.global, cmd),
        Command::Webhooks(cmd) => commands::webhooks::run(&cli.global, cmd),
        Command::Mesh(cmd) => commands::mesh::run(&cli.global, cmd),
        Command::Purge(args) => commands::ops::purge(&cli.global, args),
        Command::Backup(args) => commands::ops::backup(&cli.global, args),
        Command::Bench(args) => commands::bench::run(&cli.global, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match cli.global.log_format {
                logging::LogFormat::Text => eprintln!("error: {e:#}"),
                // A log shipper reads standard error as JSON lines: the failure is one too.
                logging::LogFormat::Json => {
                    tracing::error!(error = %format!("{e:#}"), "cpis failed")
                }
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every option and argument of every command explains itself in `--help`.
    #[test]
    fn every_option_of_every_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().or(arg.get_long_help());
                if help.is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "cpis", &mut missing);
        assert!(
            missing.is_empty(),
            "options without help text:\n{}",
            missing.join("\n")
        );
    }

    /// `--database` names both backends' URL forms.
    #[test]
    fn database_help_names_both_backends() {
        let cmd = Cli::command();
        let db = cmd
            .get_arguments()
            .find(|a| a.get_id() == "database")
            .expect("--database");
        let help = db.get_help().expect("help").to_string();
        assert!(help.contains("sqlite://FILE"), "{help}");
        assert!(help.contains("postgres://"), "{help}");
    }
}
