//! Third-party FHIR tooling against the real binary: runs the pytest suite in `tests/python`
//! (FHIR R4 models from `fhir.resources`, the `fhirpy` client) against `cpis serve --demo`.
//!
//! Needs a Python with `tests/python/requirements.txt` installed, named by `CPIS_PYTHON`;
//! `scripts/test` creates one in `.venv` and sets it. Without it the test is skipped, unless
//! `CPIS_REQUIRE_PYTHON=1` (set by `scripts/test` and CI), when it fails.

use std::path::Path;
use std::process::Command;

#[test]
fn fhir_api_passes_third_party_fhir_checks() {
    let python = std::env::var_os("CPIS_PYTHON").filter(|p| !p.is_empty());
    let Some(python) = python else {
        let required = std::env::var("CPIS_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CPIS_REQUIRE_PYTHON=1 but CPIS_PYTHON is not set: name a Python with \
             tests/python/requirements.txt installed (scripts/test creates .venv and sets it)"
        );
        eprintln!(
            "fhir_python skipped: set CPIS_PYTHON (scripts/test does this) to run the Python FHIR checks"
        );
        return;
    };

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-rxXs",
            "-p",
            "no:cacheprovider",
            "tests/python",
        ])
        .current_dir(&root)
        .env("CPIS_BIN", env!("CARGO_BIN_EXE_cpis"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("run {} -m pytest: {e}", Path::new(&python).display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pytest tests/python failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with --nocapture: which checks ran, which are expected failures.
    println!("{stdout}");
}
