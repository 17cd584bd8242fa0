use crate::config::{upload_settings, GlobalArgs};
use anyhow::{bail, Context, Result};
use cpis_core::upload::{write_report_csv, Progress, ProgressPhase, SpooledFile, Submitted};
use cpis_domain::report::{UploadId, UploadMeta, UploadSummary};
use cpis_domain::upload::{FileId, UploadMode, FORMAT_V1};
use cpis_domain::{parse_iso_date, FileOutcome, OdsCode};
use cpis_store::{RowFilter, Store};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cpis-upload/1 CSV file.
    file: PathBuf,
    /// The local authority the file is for (ODS code). The CLI writes straight to the database,
    /// so it is an operator tool: it acts for the LA named here.
    #[arg(long)]
    la: String,
    /// `delta` (rows upsert or delete) or `full` (the file is the LA's complete list).
    #[arg(long, default_value = "delta")]
    mode: String,
    /// The LA's id for the file [default: derived from the file's content].
    #[arg(long)]
    file_id: Option<String>,
    /// The file's date, YYYY-MM-DD [default: today]. Full uploads end missing plans as of it.
    #[arg(long)]
    file_date: Option<String>,
    /// File format version.
    #[arg(long, default_value = FORMAT_V1)]
    format: String,
    /// Write the per-record report (CSV) here.
    #[arg(long)]
    report_csv: Option<PathBuf>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Share of the LA's open plans a full upload may end before it is held (0–1).
    #[arg(long, env = "CPIS_MASS_END_THRESHOLD")]
    mass_end_threshold: Option<f64>,
    /// Largest file accepted, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    max_bytes: u64,
}

#[derive(clap::Args, Debug)]
pub struct ConfirmArgs {
    /// The held upload's id.
    id: String,
    /// The local authority the upload belongs to.
    #[arg(long)]
    la: String,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The upload's id.
    id: String,
    /// The local authority the upload belongs to.
    #[arg(long)]
    la: String,
    /// Print the per-record report as CSV instead of the summary.
    #[arg(long)]
    csv: bool,
}

#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: valid template"
)]
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:10} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let file_cfg = global.file()?;
    let la = OdsCode::parse(&args.la).context("--la")?;
    let mode: UploadMode = args.mode.parse()?;
    let file_date = match &args.file_date {
        Some(d) => parse_iso_date(d).context("--file-date")?,
        None => chrono::Utc::now().date_naive(),
    };
    let input = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let url = global.database_url(&file_cfg, "sqlite://cpis.db");
    // The database first: nothing is spooled beside a database that is not there.
    let engine = super::open_engine(
        &url,
        cpis_store::IfMissing::Refuse,
        upload_settings(&file_cfg, args.mass_end_threshold)?,
    )?;
    super::install_spool_dir(&url, file_cfg.spool_dir.as_deref())?;
    let spooled = SpooledFile::from_reader(input, args.max_bytes)?;
    let file_id = match &args.file_id {
        Some(f) => FileId::parse(f)?.as_str().to_owned(),
        None => format!("sha256-{}", &spooled.sha256()[..16]),
    };
    let store = engine.store().clone();
    if store.local_authority(&la)?.is_none() {
        bail!("{la} is not in the local authority directory (load it with 'cpis directory load')");
    }
    let meta = UploadMeta {
        la: la.clone(),
        file_id,
        mode,
        file_date,
        format: args.format.clone(),
        channel: "cli".into(),
    };
    let bar = progress_bar(spooled.len() * 2);
    let cap = cpis_core::upload::operator_capability(&la, &operator_name());
    let submitted = engine.submit(&cap, meta, &spooled, &|p: Progress| {
        let (msg, done) = match p.phase {
            ProgressPhase::Verifying => ("verifying", p.bytes),
            ProgressPhase::Applying => ("applying", p.total_bytes + p.bytes),
        };
        bar.set_message(msg);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let (summary, same_content) = match submitted {
        Submitted::Replay(s) => {
            let earlier = match &s.duplicate_of {
                Some(id) => store.upload(&la, id)?,
                None => None,
            };
            let same = earlier.is_some_and(|e| e.content_sha256 == s.content_sha256);
            eprintln!(
                "duplicate: nothing was applied; {}",
                if same {
                    "this file is already loaded (exit 0)"
                } else {
                    "its file id was used by a different file: send this one under a new file id (exit 3)"
                }
            );
            (s, Some(same))
        }
        Submitted::New(s) => (s, None),
    };
    print_summary(&summary, args.json)?;
    if let Some(path) = &args.report_csv {
        write_full_report(store.as_ref(), &summary, path)?;
    }
    Ok(match same_content {
        Some(true) => ExitCode::SUCCESS,
        Some(false) => ExitCode::from(3),
        None => exit_for(&summary),
    })
}

pub fn confirm(global: &GlobalArgs, args: ConfirmArgs) -> Result<ExitCode> {
    let file_cfg = global.file()?;
    let la = OdsCode::parse(&args.la).context("--la")?;
    let id = UploadId::parse(&args.id)?;
    let url = global.database_url(&file_cfg, "sqlite://cpis.db");
    let engine = super::open_engine(
        &url,
        cpis_store::IfMissing::Refuse,
        upload_settings(&file_cfg, None)?,
    )?;
    super::install_spool_dir(&url, file_cfg.spool_dir.as_deref())?;
    let cap = cpis_core::upload::operator_capability(&la, &operator_name());
    let summary = engine.confirm(&cap, &id, &|_| {})?;
    print_summary(&summary, args.json)?;
    Ok(exit_for(&summary))
}

pub fn report(global: &GlobalArgs, args: ReportArgs) -> Result<ExitCode> {
    let file_cfg = global.file()?;
    let la = OdsCode::parse(&args.la).context("--la")?;
    let id = UploadId::parse(&args.id)?;
    let store = super::open_existing(&global.database_url(&file_cfg, "sqlite://cpis.db"))?;
    let summary = store
        .upload(&la, &id)?
        .with_context(|| format!("no upload {id} for {la}"))?;
    if args.csv {
        let rows = store.upload_rows(&la, &id, &RowFilter::default())?;
        let mut out = write_report_csv(std::io::stdout().lock(), &rows, true)?;
        std::io::Write::flush(&mut out)?;
    } else {
        print_summary(&summary, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The operator's login name, recorded in the audit.
pub fn operator_name() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".into())
}

fn write_full_report(store: &dyn Store, s: &UploadSummary, path: &PathBuf) -> Result<()> {
    let rows = store.upload_rows(&s.meta.la, &s.id, &RowFilter::default())?;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    write_report_csv(f, &rows, true)?;
    Ok(())
}

fn print_summary(s: &UploadSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!("upload     {}", s.id);
    println!("la         {}", s.meta.la);
    println!(
        "file id    {} ({} mode, file date {})",
        s.meta.file_id, s.meta.mode, s.meta.file_date
    );
    println!("status     {}", s.status.code());
    if let Some(o) = s.file_outcome {
        println!("outcome    {} {}", o.code(), o.description());
    }
    if let Some(m) = &s.message {
        println!("message    {m}");
    }
    println!(
        "rows       {} ({} accepted, {} rejected)",
        s.counts.rows, s.counts.accepted, s.counts.rejected
    );
    for (code, n) in &s.counts.by_outcome {
        println!("  {:6} {:>8}  {}", code.code(), n, code.description());
    }
    if s.counts.plans_ended > 0 || s.meta.mode == UploadMode::Full {
        println!(
            "plans ended (absent from full file) {}",
            s.counts.plans_ended
        );
    }
    if s.counts.deleted > 0 {
        println!("records deleted {}", s.counts.deleted);
    }
    Ok(())
}

/// 0 when every row loaded, 2 for a partial or held upload, 1 when nothing was applied.
fn exit_for(s: &UploadSummary) -> ExitCode {
    match s.file_outcome {
        Some(FileOutcome::AllLoaded) => ExitCode::SUCCESS,
        Some(FileOutcome::Partial) | None => ExitCode::from(2),
        Some(_) => ExitCode::from(1),
    }
}
