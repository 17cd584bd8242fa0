//! Running a test suite written for another tool (pytest, `node --test`) against the real `cpis`
//! binary. The suite's interpreter is named by an environment variable; without it the test is
//! skipped, unless its `CPIS_REQUIRE_*` variable is `1` (CI), when it fails instead.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, where the suites live and run.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The program named by the environment variable `var`, unless that is unset or empty.
pub fn program(var: &str) -> Option<OsString> {
    std::env::var_os(var).filter(|p| !p.is_empty())
}

/// Ends a test whose prerequisite is missing (`why`): fails it when `require_var` is `1`, so that
/// a run meant to include the suite cannot pass by skipping it, or else says `skipped` on stderr
/// and lets the caller return.
#[track_caller]
pub fn skip_unless_required(require_var: &str, why: &str, skipped: &str) {
    let required = std::env::var(require_var).is_ok_and(|v| v == "1");
    assert!(!required, "{require_var}=1 but {why}");
    eprintln!("{skipped}");
}

/// Runs `program args…` in the workspace root with `CPIS_BIN` naming the binary under test (and
/// `env`), and fails the test with both outputs unless it succeeds. `suite` names the run in
/// that failure (`pytest tests/python`).
#[track_caller]
pub fn run(program: &OsStr, args: &[&str], env: &[(&str, &str)], suite: &str) {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .env("CPIS_BIN", env!("CARGO_BIN_EXE_cpis"))
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} {}: {e}",
                Path::new(program).display(),
                args.join(" ")
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{suite} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with --nocapture: which tests ran, which are expected failures.
    println!("{stdout}");
}

/// Runs the pytest suite in `dir` (relative to the workspace root) with `python`.
#[track_caller]
pub fn pytest(python: &OsStr, dir: &str) {
    run(
        python,
        &["-m", "pytest", "-q", "-rxXs", "-p", "no:cacheprovider", dir],
        // Keeps __pycache__ out of the source tree.
        &[("PYTHONDONTWRITEBYTECODE", "1")],
        &format!("pytest {dir}"),
    );
}
