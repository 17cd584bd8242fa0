//! Reference data and schema commands: `migrate`, `demographics load`, `directory load`,
//! `demo load`.

use crate::config::{upload_settings, GlobalArgs};
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_core::loaders;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DemographicsCommand {
    /// Load (insert or update) entries from a CSV extract:
    /// nhs_number,status,superseded_by,date_of_birth,sensitive. The whole file is checked first;
    /// one bad line and nothing is loaded.
    Load {
        /// The CSV extract.
        file: PathBuf,
    },
    /// Apply a change feed (same columns as the extract): superseded numbers move their records
    /// to the replacement and notify each owning LA; inactive numbers notify without moving.
    /// Atomic and idempotent; the whole file is checked first.
    ApplyChanges {
        /// The change file (CSV).
        file: PathBuf,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Load (insert or update) local authorities and/or care settings from CSV.
    Load {
        /// ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox[,office_hours]
        #[arg(long)]
        local_authorities: Option<PathBuf>,
        /// ods_code,name,setting_type,phone: phone (optional per row) is the number an LA rings
        /// back, a UK number (0 and 10 or 11 digits) or +international; a file without the
        /// phone column still loads.
        #[arg(long)]
        care_settings: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// Load the bundled demo directories, demographics and LA uploads (idempotent).
    Load,
}

fn open(global: &GlobalArgs) -> Result<cpis_core::UploadEngine> {
    let file = global.file()?;
    super::open_engine(
        &global.database_url(&file, "sqlite://cpis.db"),
        cpis_store::IfMissing::Create,
        upload_settings(&file, None)?,
    )
}

fn read(path: &PathBuf) -> Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))
}

pub fn migrate(global: &GlobalArgs) -> Result<ExitCode> {
    let engine = open(global)?;
    println!(
        "database schema is up to date ({})",
        engine.store().backend()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn demographics(global: &GlobalArgs, cmd: DemographicsCommand) -> Result<ExitCode> {
    let file = match cmd {
        DemographicsCommand::Load { file } => file,
        DemographicsCommand::ApplyChanges { file, json } => {
            let entries = loaders::parse_demographics(read(&file)?)
                .with_context(|| format!("{}", file.display()))?;
            let engine = open(global)?;
            let report = cpis_core::lifecycle::apply_demographic_changes(
                engine.store().as_ref(),
                &cpis_domain::SystemClock,
                &global.file()?.visibility(),
                &super::operator_admin(),
                &entries,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "applied {} changes: {} superseded numbers moved {} records, {} inactive numbers, {} invalidated for adoption, {} births notified, {} LA notifications",
                    report.entries, report.superseded_with_records, report.records_moved, report.inactive_with_records,
                    report.adoption_invalidated_with_records, report.births_notified, report.notifications
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let entries =
        loaders::parse_demographics(read(&file)?).with_context(|| format!("{}", file.display()))?;
    let engine = open(global)?;
    let n = engine
        .store()
        .upsert_demographics(&entries, chrono::Utc::now())?;
    println!("loaded {n} demographics entries");
    Ok(ExitCode::SUCCESS)
}

pub fn directory(global: &GlobalArgs, cmd: DirectoryCommand) -> Result<ExitCode> {
    let DirectoryCommand::Load {
        local_authorities,
        care_settings,
    } = cmd;
    anyhow::ensure!(
        local_authorities.is_some() || care_settings.is_some(),
        "name --local-authorities FILE and/or --care-settings FILE"
    );
    // Parse both before storing either, so a bad file changes nothing.
    let las = local_authorities
        .as_ref()
        .map(|p| {
            loaders::parse_local_authorities(read(p)?).with_context(|| format!("{}", p.display()))
        })
        .transpose()?;
    let settings = care_settings
        .as_ref()
        .map(|p| loaders::parse_care_settings(read(p)?).with_context(|| format!("{}", p.display())))
        .transpose()?;
    let engine = open(global)?;
    let now = chrono::Utc::now();
    if let Some(las) = las {
        println!(
            "loaded {} local authorities",
            engine.store().upsert_local_authorities(&las, now)?
        );
    }
    if let Some(settings) = settings {
        println!(
            "loaded {} care settings",
            engine.store().upsert_care_settings(&settings, now)?
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn demo(global: &GlobalArgs, cmd: DemoCommand) -> Result<ExitCode> {
    let DemoCommand::Load = cmd;
    let engine = open(global)?;
    let d = cpis_core::demo::load(&engine)?;
    let identities = cpis_core::demo::create_identities(engine.store().as_ref())?;
    println!(
        "demo data: {} local authorities, {} care settings, {} demographics entries, {} uploads applied ({} already present), {identities} identities created",
        d.local_authorities, d.care_settings, d.demographics, d.uploads_applied, d.uploads_already_present
    );
    Ok(ExitCode::SUCCESS)
}
