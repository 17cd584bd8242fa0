//! `cpis purge` (retention) and `cpis backup`.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    /// Report what would be purged without deleting anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The backup file to write (must not exist). Restore by pointing --database at it.
    file: PathBuf,
}

pub fn purge(global: &GlobalArgs, args: PurgeArgs) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    let report = cpis_core::lifecycle::purge(
        store.as_ref(),
        &cpis_domain::SystemClock,
        &file.visibility(),
        &super::operator_admin(),
        args.dry_run,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.dry_run {
        println!(
            "dry run: {} plans are past their visibility window; nothing deleted",
            report.plans_due
        );
    } else {
        println!(
            "purged {} plans past their visibility window and {} records left with no plan (audit kept)",
            report.plans_deleted, report.records_deleted
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn backup(global: &GlobalArgs, args: BackupArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        !args.file.exists(),
        "{} already exists",
        args.file.display()
    );
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    store
        .backup_to(&args.file)
        .with_context(|| format!("backing up to {}", args.file.display()))?;
    let copy = cpis_store::open(&format!("sqlite://{}", args.file.display()))?;
    let (a, b) = (store.counts()?, copy.counts()?);
    anyhow::ensure!(
        a == b,
        "the backup does not match the database: {a:?} vs {b:?}"
    );
    println!(
        "backed up to {}: {} records, {} plans, {} notifications, {} uploads",
        args.file.display(),
        b.records,
        b.plans,
        b.notifications,
        b.uploads
    );
    Ok(ExitCode::SUCCESS)
}
