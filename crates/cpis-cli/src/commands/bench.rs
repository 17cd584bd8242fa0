use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Upload engine throughput: a full load, a full reload and a daily delta file, on a fresh
    /// SQLite database in a temporary directory. Build with --release for real figures.
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

pub fn run(args: Args) -> Result<ExitCode> {
    match args.what {
        What::Upload {
            rows,
            daily_rows,
            json,
        } => {
            let dir = tempfile::tempdir()?;
            let results = cpis_core::bench::upload(dir.path(), rows, daily_rows)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
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
