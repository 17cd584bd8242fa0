use crate::config::GlobalArgs;
use anyhow::{Context, Result};
use clap::Subcommand;
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
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    match args.what {
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
        }
    }
    Ok(ExitCode::SUCCESS)
}
