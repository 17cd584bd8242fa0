//! `cpis audit verify|search`.

use crate::config::GlobalArgs;
use anyhow::Result;
use clap::Subcommand;
use cpis_domain::NhsNumber;
use cpis_store::{AuditQuery, AuditVerification};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the audit hash chain; exits 1 if any entry was edited, deleted, inserted or
    /// reordered.
    Verify,
    /// Search the audit trail (newest first).
    Search {
        #[arg(long)]
        nhs_number: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        organisation: Option<String>,
        /// Action prefix, e.g. `lookup.` or `security.`.
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub fn run(global: &GlobalArgs, cmd: AuditCommand) -> Result<ExitCode> {
    let file = global.file()?;
    let store = super::open_existing(&global.database_url(&file, "sqlite://cpis.db"))?;
    match cmd {
        AuditCommand::Verify => match store.audit_verify()? {
            AuditVerification::Intact {
                entries,
                head_seq,
                head_hash,
            } => {
                println!("audit trail intact: {entries} entries; head {head_seq} {head_hash}");
                Ok(ExitCode::SUCCESS)
            }
            AuditVerification::Broken { seq, problem } => {
                println!("audit trail BROKEN at entry {seq}: {problem}");
                Ok(ExitCode::from(1))
            }
        },
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
