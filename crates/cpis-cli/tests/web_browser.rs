//! The web UI in a real browser: runs the Node suite in `tests/browser` (headless Debian
//! Chromium driven by `playwright-core`, accessibility checked by axe-core) against
//! `cpis serve --demo`. Screenshots land in `target/browser-artifacts/` (or
//! `$CPIS_BROWSER_ARTIFACTS`).
//!
//! Needs Node (named by `CPIS_NODE`), `tests/browser/node_modules` (`npm ci` there) and
//! `/usr/bin/chromium` (or `CPIS_CHROMIUM`); `scripts/test` sets all this up. Without them the
//! test is skipped, unless `CPIS_REQUIRE_BROWSER=1` (set by `scripts/test` in CI), when it fails.

mod support;

use std::path::{Path, PathBuf};
use support::external_suite;

fn missing_prerequisite(root: &Path) -> Option<String> {
    if external_suite::program("CPIS_NODE").is_none() {
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
    if let Some(why) = missing_prerequisite(&external_suite::root()) {
        external_suite::skip_unless_required(
            "CPIS_REQUIRE_BROWSER",
            &why,
            &format!("web_browser skipped: {why}"),
        );
        return;
    }
    let node = external_suite::program("CPIS_NODE").expect("checked above");
    external_suite::run(
        &node,
        // A stuck page fails its test after five minutes instead of hanging the run.
        &["--test", "--test-timeout=300000", "tests/browser/"],
        &[],
        "node --test tests/browser/",
    );
}
