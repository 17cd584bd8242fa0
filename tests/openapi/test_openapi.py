"""cpis's JSON API against its own OpenAPI description (`GET /api/v1/openapi.json`), checked by
schemathesis, which generates requests from the document: for each kind of identity (an LA
system, an administrator, an auditor, a clinician), no answer may be a 5xx, and every answer's
status, content type and body must be the ones the document declares for it.

The suite starts `cpis serve --demo` (the binary named by CPIS_BIN) and runs schemathesis's own
command line against it. It is run by `crates/cpis-cli/tests/openapi_schemathesis.rs`, which
`scripts/test` enables.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from cpis_server import demo_server  # noqa: E402

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])
# The demo identities (README): each reaches a different part of the API.
TOKENS = ["demo-E08000026", "demo-admin", "demo-auditor", "demo-RDEMO01"]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("cpis"), pytest.fail) as base:
        yield base


def test_the_document_is_openapi_3_1_and_covers_the_api(server):
    doc = requests.get(server + "/api/v1/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.1")
    paths = set(doc["paths"])
    for path in [
        "/api/v1/uploads", "/api/v1/uploads/{id}", "/api/v1/uploads/{id}/confirm",
        "/api/v1/notifications", "/api/v1/notifications/{id}/ack", "/api/v1/notifications/stream",
        "/auth/login", "/auth/logout", "/auth/session", "/oauth2/token", "/api/v1/audit",
        "/api/v1/audit/verify", "/api/v1/admin/alerts", "/api/v1/admin/users", "/healthz",
        "/readyz", "/metrics",
    ]:
        assert path in paths, path
    assert {"bearer", "session"} <= set(doc["components"]["securitySchemes"])
    # Every declared operation exists: none answers 404 or 405 for its own method and path.
    for path, ops in doc["paths"].items():
        concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000")
        for method in ops:
            r = requests.request(method.upper(), server + concrete, timeout=30,
                                 headers={"Authorization": "Bearer demo-admin"}, stream=True)
            r.close()
            assert r.status_code != 405, (method, path)
            if "{id}" not in path:
                assert r.status_code != 404, (method, path)


@pytest.mark.parametrize("token", TOKENS)
def test_every_answer_matches_the_document(server, token):
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", server + "/api/v1/openapi.json",
         "--url", server, "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
         "--phases", "examples,fuzzing,stateful", "--max-examples", "25", "--workers", "2",
         # An event stream never ends: it is checked by its own tests.
         "--exclude-path", "/api/v1/notifications/stream", "--seed", "20261203"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
    assert " passed" in result.stdout, result.stdout[-4000:]
