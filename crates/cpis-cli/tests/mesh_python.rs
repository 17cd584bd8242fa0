//! cpis as a MESH mailbox against NHS England's own tools: runs the pytest suite in
//! `tests/mesh` (NHS England's `mesh-sandbox` as the MESH server, its Python `mesh-client` as the
//! local authorities) against `cpis serve --demo` with the MESH worker on.
//!
//! Needs a Python with `tests/mesh/requirements.txt` installed, named by `CPIS_MESH_PYTHON`;
//! `scripts/test` creates one in `.venv-mesh` and sets it. Without it the test is skipped,
//! unless `CPIS_REQUIRE_MESH=1` (set by `scripts/test`), when it fails.

mod support;

use support::external_suite;

#[test]
fn cpis_exchanges_uploads_reports_and_notifications_over_mesh() {
    let Some(python) = external_suite::program("CPIS_MESH_PYTHON") else {
        external_suite::skip_unless_required(
            "CPIS_REQUIRE_MESH",
            "CPIS_MESH_PYTHON is not set: name a Python with tests/mesh/requirements.txt installed \
             (scripts/test creates .venv-mesh and sets it)",
            "mesh_python skipped: set CPIS_MESH_PYTHON (scripts/test does this) to run the MESH tests",
        );
        return;
    };
    external_suite::pytest(&python, "tests/mesh");
}
