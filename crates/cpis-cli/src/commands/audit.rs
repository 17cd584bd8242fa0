//! `cpis audit verify|search`.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use cpis_core::audit_checkpoint::{self, CheckpointKey};
use cpis_domain::NhsNumber;
use cpis_store::{AuditQuery, AuditVerification};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit hash chain; exits 1 if any entry was edited, deleted, inserted or
    /// reordered, or (with --checkpoint) if the database is behind or diverges from a signed
    /// checkpoint.
    Verify {
        /// A file of signed checkpoints written by `cpis audit checkpoint`: every one must
        /// match the database (catches a chain rebuilt by someone with database write access).
        #[arg(long, requires = "key_file")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key (32 or more bytes, kept outside the database).
        #[arg(long, env = "CPIS_AUDIT_CHECKPOINT_KEY_FILE")]
        key_file: Option<PathBuf>,
    },
    /// Verify the chain, then sign its head (sequence number and hash) with a key kept outside
    /// the database and append it as one JSON line to --out (or print it, e.g. for syslog).
    Checkpoint {
        /// The checkpoint key (32 or more bytes, kept outside the database).
        #[arg(long, env = "CPIS_AUDIT_CHECKPOINT_KEY_FILE")]
        key_file: PathBuf,
        /// Append the checkpoint to this file (created if missing); without it, print it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search the audit trail (newest first).
    Search {
        /// Entries about this child (NHS number, 10 digits).
        #[arg(long)]
        nhs_number: Option<String>,
        /// Entries by this actor: the actor id exactly as the results print it (e.g.
        /// `operator:alice`).
        #[arg(long)]
        user: Option<String>,
        /// Entries by actors at this organisation (ODS code).
        #[arg(long)]
        organisation: Option<String>,
        /// Action prefix, e.g. `lookup.` or `security.`.
        #[arg(long)]
        action: Option<String>,
        /// Most entries to print.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub fn run(global: &GlobalArgs, cmd: AuditCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    match cmd {
        AuditCommand::Verify {
            checkpoint,
            key_file,
        } => match store.audit_verify()? {
            AuditVerification::Intact {
                entries,
                head_seq,
                head_hash,
            } => {
                println!("audit trail intact: {entries} entries; head {head_seq} {head_hash}");
                let (Some(file), Some(key_file)) = (checkpoint, key_file) else {
                    return Ok(ExitCode::SUCCESS);
                };
                let key = read_key(&key_file)?;
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                match audit_checkpoint::check(store.as_ref(), &key, &text, head_seq) {
                    Ok(held) => {
                        println!(
                            "checkpoints held: {} (newest at entry {})",
                            held.checkpoints, held.newest_seq
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        println!("audit trail does NOT match its checkpoints: {e}");
                        Ok(ExitCode::from(1))
                    }
                }
            }
            AuditVerification::Broken { seq, problem } => {
                println!("audit trail BROKEN at entry {seq}: {problem}");
                Ok(ExitCode::from(1))
            }
        },
        AuditCommand::Checkpoint { key_file, out } => {
            let key = read_key(&key_file)?;
            let c = audit_checkpoint::take(store.as_ref(), &key, chrono::Utc::now())?;
            let line = serde_json::to_string(&c)?;
            match out {
                None => println!("{line}"),
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    writeln!(f, "{line}")?;
                    f.sync_all()?;
                    println!(
                        "checkpoint of entry {} appended to {}",
                        c.seq,
                        path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Search {
            nhs_number,
            user,
            organisation,
            action,
            limit,
        } => {
            let q = AuditQuery {
                subject_nhs: nhs_number.as_deref().map(NhsNumber::parse).transpose()?,
                actor_id: user,
                organisation,
                action_prefix: action,
                limit,
                ..Default::default()
            };
            for r in store.audit_search(&q)? {
                let e = &r.entry;
                println!(
                    "{:>6} {} {:<24} {:<8} {} [{}] {} {}",
                    r.seq,
                    e.time.format("%Y-%m-%dT%H:%M:%SZ"),
                    e.action,
                    e.outcome,
                    e.actor.id,
                    e.actor.organisation.as_deref().unwrap_or("-"),
                    e.subject_nhs.map(|n| n.digits()).unwrap_or_default(),
                    e.detail.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_key(path: &Path) -> Result<CheckpointKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the checkpoint key {}", path.display()))?;
    Ok(CheckpointKey::new(bytes)?)
}
