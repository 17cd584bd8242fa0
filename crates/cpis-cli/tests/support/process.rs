//! Running the `cpis` binary under test.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `cpis --database sqlite://<db>`, with none of the caller's `CPIS_*`, `RUST_LOG` or
/// `NO_COLOR` settings leaking into the run.
pub fn cpis_sqlite(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpis"));
    c.arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("CPIS_CONFIG")
        .env_remove("CPIS_LOG")
        .env_remove("CPIS_LOG_FORMAT")
        .env_remove("CPIS_BIND")
        .env_remove("CPIS_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG");
    c
}

/// Stops a server with SIGTERM (so it logs its shutdown), else kills it; waits at most 30 s
/// before killing it anyway.
pub fn stop(mut child: Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !term.is_ok_and(|s| s.success()) {
        // No `kill` command: stop it the hard way (its log so far is complete).
        let _ = child.kill();
    }
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
