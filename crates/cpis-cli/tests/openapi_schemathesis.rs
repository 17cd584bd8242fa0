//! The JSON API against its own OpenAPI description: runs `tests/openapi` (schemathesis, from
//! PyPI) against `cpis serve --demo` — no 5xx, and every response's status, content type and
//! body as `/api/v1/openapi.json` declares them, for each kind of demo identity.
//!
//! Needs a Python with `tests/openapi/requirements.txt` installed, named by
//! `CPIS_OPENAPI_PYTHON`; `scripts/test` creates one in `.venv-openapi` and sets it. Without it
//! the test is skipped, unless `CPIS_REQUIRE_OPENAPI=1` (set by `scripts/test`), when it fails.

mod support;

use support::external_suite;

#[test]
fn the_json_api_matches_its_openapi_description() {
    let Some(python) = external_suite::program("CPIS_OPENAPI_PYTHON") else {
        external_suite::skip_unless_required(
            "CPIS_REQUIRE_OPENAPI",
            "CPIS_OPENAPI_PYTHON is not set: name a Python with tests/openapi/requirements.txt \
             installed (scripts/test creates .venv-openapi and sets it)",
            "openapi_schemathesis skipped: set CPIS_OPENAPI_PYTHON (scripts/test does this)",
        );
        return;
    };
    external_suite::pytest(&python, "tests/openapi");
}
