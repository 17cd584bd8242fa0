//! cpis as a MESH mailbox against NHS England's own tools: runs the pytest suite in
//! `tests/mesh` (NHS England's `mesh-sandbox` as the MESH server, its Python `mesh-client` as the
//! local authorities) against `cpis serve --demo` with the MESH worker on.
//!
//! Needs a Python with `tests/mesh/requirements.txt` installed, named by `CPIS_MESH_PYTHON`;
//! `scripts/test` creates one in `.venv-mesh` and sets it. Without it the test is skipped,
//! unless `CPIS_REQUIRE_MESH=1` (set by `scripts/test`), when it fails.

use std::path::Path;
use std::process::Command;

#[test]
fn cpis_exchanges_uploads_reports_and_notifications_over_mesh() {
    let python = std::env::var_os("CPIS_MESH_PYTHON").filter(|p| !p.is_empty());
    let Some(python) = python else {
        let required = std::env::var("CPIS_REQUIRE_MESH").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CPIS_REQUIRE_MESH=1 but CPIS_MESH_PYTHON is not set: name a Python with \
             tests/mesh/requirements.txt installed (scripts/test creates .venv-mesh and sets it)"
        );
        eprintln!(
            "mesh_python skipped: set CPIS_MESH_PYTHON (scripts/test does this) to run the MESH tests"
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
            "tests/mesh",
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
        "pytest tests/mesh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{stdout}");
}
