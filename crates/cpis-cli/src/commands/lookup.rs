//! `cpis lookup NHS`: an operator's lookup, silent by default, showing what a clinician sees.

use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use cpis_auth::{OrgKind, Principal};
use cpis_core::{LookupRequest, LookupService};
use cpis_domain::{NhsNumber, OdsCode, Permission, Permissions, PlanVisibility, SystemClock};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The child's NHS number (spaces allowed). For an unborn child, the mother's.
    nhs_number: String,
    /// Who is looking (recorded in the audit) [default: the login name].
    #[arg(long)]
    user: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid code"
)]
pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let nhs = NhsNumber::parse(&args.nhs_number).context("NHS number")?;
    let file = global.file()?;
    let store: Arc<dyn cpis_store::Store> = Arc::from(super::open_existing(
        &global.database_url(&file, "sqlite://cpis.db"),
    )?);
    let user = args
        .user
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let lookups = LookupService::start_with_settings(
        store.clone(),
        Arc::new(SystemClock),
        file.lookup_settings()?,
        Arc::default(),
    );
    // Operators are not at a care setting: their lookups are always silent.
    let operator = Principal::local_operator(
        &user,
        OdsCode::parse(cpis_core::demo::OPERATIONS_ORG).expect("valid code"),
        "cpis operations",
        OrgKind::Other,
        Permissions::new([Permission::ViewSilent]),
    );
    let cap = operator.lookup().map_err(|e| anyhow::anyhow!(e))?;
    let result = lookups
        .lookup(LookupRequest::new(&cap, nhs, false, None))
        .context("lookup")?;
    if args.json {
        let records: Vec<_> = result
            .records
            .iter()
            .map(|r| {
                let la = store.local_authority(&r.record.la).ok().flatten();
                serde_json::json!({
                    "la": r.record.la,
                    "la_name": la.as_ref().map(|l| l.name.clone()),
                    "office_hours_phone": la.as_ref().map(|l| l.office_hours_phone.clone()),
                    "edt_phone": la.as_ref().map(|l| l.edt_phone.clone()),
                    "office_hours": la.as_ref().map(|l| l.office_hours.to_string()),
                    "sensitive": r.record.sensitive,
                    "plans": r.plans.iter().map(|(p, v)| serde_json::json!({"plan": p, "visibility": v})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let history: Vec<_> = result
            .history
            .iter()
            .map(|a| {
                if result.sensitive() {
                    serde_json::json!({"time": a.time, "role": a.accessor.role})
                } else {
                    serde_json::json!({"time": a.time, "role": a.accessor.role, "organisation": a.accessor.organisation_name, "setting_type": a.accessor.setting_type})
                }
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "nhs_number": nhs,
                "records": records,
                "recent_accesses": history,
                "attendance": result.attendance.counts,
                "pattern": result.pattern.map(|p| p.code()),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if result.records.is_empty() {
        println!("No CP-IS information for {}.", nhs.grouped());
        return Ok(ExitCode::SUCCESS);
    }
    println!("CP-IS information for {}", nhs.grouped());
    for r in &result.records {
        let la = store.local_authority(&r.record.la)?;
        println!();
        match &la {
            Some(la) => {
                println!("  {} ({})", la.name, la.ods_code);
                println!(
                    "    office hours     {} ({}, UK time)",
                    la.office_hours_phone, la.office_hours
                );
                println!("    emergency duty   {}", la.edt_phone);
            }
            None => println!("  {}", r.record.la),
        }
        for (p, v) in &r.plans {
            let state = match v {
                PlanVisibility::Active => "active".to_owned(),
                PlanVisibility::Ended(d) => format!("ended {d}"),
                PlanVisibility::Hidden => continue,
            };
            let edd = p
                .expected_delivery()
                .map(|d| format!(", expected delivery {d}"))
                .unwrap_or_default();
            println!(
                "    {} since {} ({state}{edd})",
                p.plan_type().description(),
                p.start()
            );
        }
    }
    let c = &result.attendance.counts;
    println!();
    println!(
        "  Unscheduled care: {} in the last 30 days at {} organisation(s), {} in 6 months{}",
        c.seen_30_days,
        c.organisations_30_days,
        c.seen_6_months,
        if result.pattern.is_some() {
            " (frequent attendance)"
        } else {
            ""
        }
    );
    println!();
    println!("  Recent unscheduled accesses ({}):", result.history.len());
    for a in &result.history {
        if result.sensitive() {
            println!(
                "    {}  {}  (location withheld: sensitive record)",
                a.time.format("%Y-%m-%d %H:%M"),
                a.accessor.role
            );
        } else {
            println!(
                "    {}  {}  {}",
                a.time.format("%Y-%m-%d %H:%M"),
                a.accessor.organisation_name,
                a.accessor.setting_type.map(|s| s.code()).unwrap_or("")
            );
        }
    }
    println!();
    println!("This lookup was silent: no local authority was notified.");
    Ok(ExitCode::SUCCESS)
}
