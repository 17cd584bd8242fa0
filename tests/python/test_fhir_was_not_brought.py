"""Was not brought (docs/WORKFLOW.md) with third-party FHIR tooling: the Appointment a scheduled
care setting posts, the Appointment cpis answers with and every OperationOutcome it refuses with
are parsed into the FHIR R4 (4.0.1) models of `fhir.resources` (strict pydantic models).

Starts its own `cpis serve --demo` (CPIS_BIN), like test_fhir_api.py; run by
`crates/cpis-cli/tests/fhir_python.rs`.
"""

import datetime
import sys
import uuid
from pathlib import Path

import pytest
import requests
from fhir.resources.appointment import Appointment
from fhir.resources.operationoutcome import OperationOutcome

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from cpis_server import demo_server  # noqa: E402

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SPINE_ERRORS = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"
FHIR_JSON = "application/fhir+json"
SHARED_CHILD = "9990597634"  # demo/README.md: held by Coventry and Westminster
SHARED_CHILD_LAS = {"E08000026", "E09000033"}
GP_ODS = "RDEMO25"  # demo/care_settings.csv: a GP practice
GP_TOKEN = f"demo-{GP_ODS}"
ED_TOKEN = "demo-RDEMO01"  # an emergency department: may not report
UNKNOWN_CHILD = "9990000018"  # a valid NHS number no demo upload holds
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store", "exception",
    "timeout", "incomplete", "throttled", "informational",
}
APPOINTMENT_STATUS = {
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
    "entered-in-error", "checked-in", "waitlist",
}
PARTICIPATION_STATUS = {"accepted", "declined", "tentative", "needs-action"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("cpis-wnb"), pytest.fail) as url:
        yield url


def instant(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def appointment(nhs, hours_ago=2):
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(
        hours=hours_ago
    )
    return {
        "resourceType": "Appointment",
        "status": "noshow",
        "description": "Immunisations",
        "start": instant(start),
        "end": instant(start + datetime.timedelta(minutes=15)),
        "participant": [
            {"actor": {"identifier": {"system": NHS_SYSTEM, "value": nhs}}, "status": "accepted"}
        ],
    }


def post(base, body, token=GP_TOKEN, content_type=FHIR_JSON):
    data = body if isinstance(body, str) else __import__("json").dumps(body)
    return requests.post(
        base + "/fhir/R4/Appointment",
        data=data.encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": content_type,
            "Accept": FHIR_JSON,
            "TraceID": f"pytest-{uuid.uuid4()}",
        },
        timeout=30,
    )


def notifications(base, token):
    out, after = [], None
    for _ in range(10_000):
        r = requests.get(
            base + "/api/v1/notifications",
            params={"after": after} if after else None,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["notifications"])
        if not page.get("more"):
            return out
        after = page["next_cursor"]
    raise AssertionError("notification paging does not end")


def outcome(r, status, codes):
    assert r.status_code == status, f"{r.status_code}: {r.text[:1000]}"
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    oo = OperationOutcome.parse_obj(r.json())
    assert oo.issue and oo.issue[0].severity == "error"
    assert oo.issue[0].code in ISSUE_TYPES and oo.issue[0].code in codes, oo.issue[0].code
    assert oo.issue[0].diagnostics
    assert [c for c in oo.issue[0].details.coding if c.system == SPINE_ERRORS]
    return oo


def test_the_documented_request_is_a_valid_r4_appointment():
    model = Appointment.parse_obj(appointment(SHARED_CHILD))
    assert model.status == "noshow" and model.status in APPOINTMENT_STATUS


def test_a_gp_report_answers_a_valid_appointment_and_tells_each_la(base):
    before = {la: len(notifications(base, f"demo-{la}")) for la in SHARED_CHILD_LAS}
    r = post(base, appointment(SHARED_CHILD))
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith(FHIR_JSON)
    body = r.json()
    model = Appointment.parse_obj(body)
    assert model.status == "noshow"
    assert model.id and model.meta.lastUpdated
    assert r.headers["Location"] == f"{base}/fhir/R4/Appointment/{model.id}"
    assert model.start < model.end
    for p in model.participant:
        assert p.status in PARTICIPATION_STATUS
    identifiers = {(p.actor.identifier.system, p.actor.identifier.value) for p in model.participant}
    assert (NHS_SYSTEM, SHARED_CHILD) in identifiers
    assert (ODS_SYSTEM, GP_ODS) in identifiers
    for la in SHARED_CHILD_LAS:
        new = notifications(base, f"demo-{la}")[before[la]:]
        told = [n for n in new if n["kind"] == "was-not-brought"]
        assert len(told) == 1, new
        assert told[0]["appointment"]["id"] == model.id
        assert told[0]["child"]["nhs_number"] == SHARED_CHILD
        assert told[0]["setting"]["ods_code"] == GP_ODS


def test_a_setting_that_may_not_report_gets_a_valid_outcome(base):
    outcome(post(base, appointment(SHARED_CHILD), token=ED_TOKEN), 403, {"forbidden"})


@pytest.mark.parametrize(
    "name,change,status,codes",
    [
        ("not-json", lambda a: "{nope", 400, {"structure"}),
        ("not-an-appointment", lambda a: {"resourceType": "Patient"}, 400, {"structure"}),
        ("no-status", lambda a: {k: v for k, v in a.items() if k != "status"}, 400, {"required"}),
        ("booked", lambda a: {**a, "status": "booked"}, 422, {"invalid"}),
        ("future", lambda a: appointment(SHARED_CHILD, hours_ago=-24), 422, {"invalid"}),
        ("bad-nhs-number", lambda a: appointment("9990597635"), 422, {"invalid"}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_reports_get_valid_outcomes_and_tell_nobody(base, name, change, status, codes):
    before = {la: len(notifications(base, f"demo-{la}")) for la in SHARED_CHILD_LAS}
    oo = outcome(post(base, change(appointment(SHARED_CHILD))), status, codes)
    if status == 422:
        assert oo.issue[0].expression, name
    for la in SHARED_CHILD_LAS:
        assert len(notifications(base, f"demo-{la}")) == before[la], name


def test_a_child_with_no_plan_gets_a_valid_outcome(base):
    oo = outcome(post(base, appointment(UNKNOWN_CHILD)), 422, {"business-rule"})
    assert "no local authority was told" in oo.issue[0].diagnostics
