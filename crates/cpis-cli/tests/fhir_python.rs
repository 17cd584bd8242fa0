//! Third-party FHIR tooling against the real binary: runs the pytest suite in `tests/python`
//! (FHIR R4 models from `fhir.resources`, the `fhirpy` client) against `cpis serve --demo`.
//!
//! Needs a Python with `tests/python/requirements.txt` installed, named by `CPIS_PYTHON`;
//! `scripts/test` creates one in `.venv` and sets it. Without it the test is skipped, unless
//! `CPIS_REQUIRE_PYTHON=1` (set by `scripts/test` and CI), when it fails.

mod support;

use support::external_suite;

#[test]
fn fhir_api_passes_third_party_fhir_checks() {
    let Some(python) = external_suite::program("CPIS_PYTHON") else {
        external_suite::skip_unless_required(
            "CPIS_REQUIRE_PYTHON",
            "CPIS_PYTHON is not set: name a Python with tests/python/requirements.txt installed \
             (scripts/test creates .venv and sets it)",
            "fhir_python skipped: set CPIS_PYTHON (scripts/test does this) to run the Python FHIR checks",
        );
        return;
    };
    external_suite::pytest(&python, "tests/python");
}
