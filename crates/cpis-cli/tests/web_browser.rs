//! The web UI in a real browser: runs the Node suite in `tests/browser` (headless Debian
//! Chromium driven by `playwright-core`, accessibility checked by axe-core) against
//! `cpis serve --demo`. Screenshots land in `target/browser-artifacts/` (or
//! `$CPIS_BROWSER_ARTIFACTS`).
//!
//! Needs Node (named by `CPIS_NODE`), `tests/browser/node_modules` (`npm ci` there) and
//! `/usr/bin/chromium` (or `CPIS_CHROMIUM`); `scripts/test` sets all this up. Without them the
//! test is skipped, unless `CPIS_REQUIRE_BROWSER=1` (set by `scripts/test` in CI), when it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn missing_prerequisite(root: &Path) -> Option<String> {
    let node = std::env::var_os("CPIS_NODE").filter(|n| !n.is_empty());
    if node.is_none() {
        return Some("CPIS_NODE is not set (scripts/test sets it)".into());
    }
    let chromium = std::env::var_os("CPIS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        return Some(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ));
    }
    let modules = root.join("tests/browser/node_modules/playwright-core");
    if !modules.is_dir() {
        return Some(
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)".into(),
        );
    }
    None
}

#[test]
fn web_ui_passes_the_browser_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Some(why) = missing_prerequisite(&root) {
        let required = std::env::var("CPIS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "CPIS_REQUIRE_BROWSER=1 but {why}");
        eprintln!("web_browser skipped: {why}");
        return;
    }
    let node = std::env::var_os("CPIS_NODE").expect("checked above");
    let output = Command::new(&node)
        // A stuck page fails its test after five minutes instead of hanging the run.
        .args(["--test", "--test-timeout=300000", "tests/browser/"])
        .current_dir(&root)
        .env("CPIS_BIN", env!("CARGO_BIN_EXE_cpis"))
        .output()
        .unwrap_or_else(|e| panic!("run {} --test: {e}", Path::new(&node).display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test tests/browser/ failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with --nocapture: which browser tests ran.
    println!("{stdout}");
}
