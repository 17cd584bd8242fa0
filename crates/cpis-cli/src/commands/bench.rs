use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Upload engine throughput: a full load, a full reload and a daily delta file, on a fresh
    /// database. By default a SQLite file in a temporary directory. With
    /// `--database postgres://USER@HOST:PORT/DB` (or CPIS_DATABASE_URL; USER may create
    /// databases) a fresh PostgreSQL database `cpis_test_…` is created on that server for the run
    /// and dropped afterwards; the database the URL names is never written. Build with --release
    /// for real figures.
    Upload {
        /// Rows in the full file.
        #[arg(long, default_value_t = 500_000)]
        rows: usize,
        /// Rows in the daily delta file.
        #[arg(long, default_value_t = 5_000)]
        daily_rows: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Seed a database to serve at scale: the synthetic LA E99999999 ("Benchmark Borough"),
    /// RECORDS synthetic children in the demographics index and one full upload of a plan for
    /// each (through the upload engine). Writes into the database `--database` names (created
    /// if missing; other data in it, e.g. the demo data, is kept). With `cpis serve --demo` on
    /// the same database afterwards, the LA's upload token is `demo-E99999999`.
    Seed {
        /// Synthetic children (records) to load: at least one (an empty seed would be an upload
        /// that loads nothing).
        #[arg(long, default_value_t = 1_000_000, value_parser = at_least_one)]
        records: usize,
        /// Also write the children's NHS numbers, one a line, to this file.
        #[arg(long)]
        nhs_list: Option<PathBuf>,
        /// Also write a full upload file for the same children with changed plans (a reload)
        /// to this file, for sending over HTTP.
        #[arg(long)]
        reload_csv: Option<PathBuf>,
    },
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    match args.what {
        What::Seed {
            records,
            nhs_list,
            reload_csv,
        } => seed(global, records, nhs_list, reload_csv),
        What::Upload {
            rows,
            daily_rows,
            json,
        } => {
            let postgres = global
                .database
                .clone()
                .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
            let (backend, results) = match postgres {
                None => {
                    let dir = tempfile::tempdir()?;
                    (
                        "sqlite".to_owned(),
                        cpis_core::bench::upload(dir.path(), rows, daily_rows)?,
                    )
                }
                Some(url) => {
                    let db =
                        cpis_store::postgres::TempDatabase::create(&url).with_context(|| {
                            format!(
                                "creating a benchmark database through {}",
                                super::redact_url(&url)
                            )
                        })?;
                    eprintln!("benchmark database {} (dropped afterwards)", db.name());
                    let store: Arc<dyn cpis_store::Store> =
                        Arc::new(cpis_store::postgres::PgStore::open(db.url())?);
                    let results = cpis_core::bench::upload_on(store, rows, daily_rows);
                    (format!("postgres ({})", db.name()), results?)
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                println!("backend: {backend}");
                println!(
                    "{:<48} {:>9} {:>10} {:>12} {:>7}",
                    "scenario", "rows", "seconds", "rows/s", "outcome"
                );
                for m in &results {
                    println!(
                        "{:<48} {:>9} {:>10.3} {:>12.0} {:>7}",
                        m.scenario, m.rows, m.seconds, m.rows_per_second, m.file_outcome
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn seed(
    global: &GlobalArgs,
    records: usize,
    nhs_list: Option<PathBuf>,
    reload_csv: Option<PathBuf>,
) -> Result<ExitCode> {
    let file = global.file()?;
    let url = global
        .database
        .clone()
        .or_else(|| file.database_url.clone())
        .context("name the database to seed with --database (or database_url in the config)")?;
    let store: Arc<dyn cpis_store::Store> = Arc::from(
        cpis_store::open_with_replica_as(&url, None, cpis_store::IfMissing::Create)
            .with_context(|| format!("opening database {}", super::redact_url(&url)))?,
    );
    let m = cpis_core::bench::seed_on(store, records)?;
    println!(
        "seeded {} records for {} in {:.3} s ({:.0} rows/s, {})",
        m.rows,
        cpis_core::bench::bench_la(),
        m.seconds,
        m.rows_per_second,
        m.file_outcome
    );
    let nhs = cpis_core::bench::children(records);
    if let Some(path) = nhs_list {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        for n in &nhs {
            writeln!(out, "{n}")?;
        }
        out.flush()?;
    }
    if let Some(path) = reload_csv {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        cpis_core::bench::write_upload_csv(&nhs, 3, |chunk| out.write_all(chunk))?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A count of at least one, or the reason it is not.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
