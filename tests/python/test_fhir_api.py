"""Third-party FHIR tooling against a running cpis (SPEC 3.1).

Every FHIR response the API gives is parsed into the FHIR R4 (4.0.1) models of `fhir.resources`
(pydantic models generated from the FHIR specification: unknown elements, wrong types, missing
required elements and bad primitive formats are rejected), then checked against the demo data.
`fhirpy`, an independent FHIR client, then searches the API the way a health system would.

The suite starts the `cpis` binary named by CPIS_BIN (`cpis serve --demo` on a free loopback port
with a temporary database) and stops it at the end; it builds nothing itself. It is run by
`crates/cpis-cli/tests/fhir_python.rs`, which `scripts/test` enables.
"""

import csv
import os
import re
import sys
import uuid
from pathlib import Path

import fhir.resources
import pytest
import requests
from fhir.resources import get_fhir_model_class
from fhir.resources.auditevent import AuditEvent
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.careteam import CareTeam
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.organization import Organization
from fhir.resources.patient import Patient
from fhir.resources.practitionerrole import PractitionerRole
from fhirpy import SyncFHIRClient
from fhirpy.base.searchset import Raw

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from cpis_server import demo_server  # noqa: E402
DEMO = ROOT / "demo"

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SHARED_CHILD = "9990597634"  # demo/README.md: held by Coventry and Westminster
SHARED_CHILD_LAS = {"E08000026", "E09000033"}
ED_TOKEN = "demo-RDEMO01"  # an emergency department: unscheduled, notifying
ED_ODS = "RDEMO01"
COVENTRY_TOKEN = "demo-E08000026"
FHIR_JSON = "application/fhir+json"
STARTUP_SECONDS = 180

# Codes from the FHIR R4 value sets with a *required* binding on the elements cpis sends
# (fhir.resources checks a code's format, not its value set).
BUNDLE_TYPES = {
    "document", "message", "transaction", "transaction-response", "batch", "batch-response",
    "history", "searchset", "collection",
}
SEARCH_ENTRY_MODES = {"match", "include", "outcome"}
CARE_TEAM_STATUS = {"proposed", "active", "suspended", "inactive", "entered-in-error"}
CONTACT_POINT_SYSTEMS = {"phone", "fax", "email", "pager", "url", "sms", "other"}
CONTACT_POINT_USES = {"home", "work", "temp", "old", "mobile"}
AUDIT_ACTIONS = {"C", "R", "U", "D", "E"}
AUDIT_OUTCOMES = {"0", "4", "8", "12"}
ISSUE_SEVERITIES = {"fatal", "error", "warning", "information"}
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store", "exception",
    "timeout", "incomplete", "throttled", "informational",
}
PUBLICATION_STATUS = {"draft", "active", "retired", "unknown"}
CAPABILITY_KINDS = {"instance", "capability", "requirements"}
TYPE_INTERACTIONS = {
    "read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
    "search-type",
}
SEARCH_PARAM_TYPES = {
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special",
}
# CareTeam.category: SNOMED CT from NHS England's England-ChildProtectionPlan value set (CP-IS guide).
SNOMED = "http://snomed.info/sct"
PLAN_TYPES = {"342191000000101": "CPP", "764841000000100": "LAC", "818901000000100": "UCPP"}
SPINE_ERRORS = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"


# ---------------------------------------------------------------------------------------------
# Demo data (the ground truth the responses are checked against)


def read_csv(name):
    with open(DEMO / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def nhs_check_digit(nine):
    """Modulus 11 check digit for the first nine digits, or None when the number is unusable."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def unknown_valid_nhs_number():
    """The first valid 999-range NHS number that is not in the demographics index."""
    known = {row["nhs_number"] for row in read_csv("demographics.csv")}
    for n in range(999000000, 999999999):
        nine = str(n)
        check = nhs_check_digit(nine)
        if check is not None and nine + str(check) not in known:
            return nine + str(check)
    raise AssertionError("no free 999 NHS number")


def local_authority(ods):
    return next(row for row in read_csv("local_authorities.csv") if row["ods_code"] == ods)


def uploaded_plans(nhs):
    """(LA, plan type, end date) for every demo upload row about `nhs`."""
    plans = []
    for la in SHARED_CHILD_LAS:
        for row in read_csv(f"uploads/{la}.csv"):
            if row["nhs_number"].replace(" ", "") == nhs:
                plans.append((la, row["plan_type"], row["end_date"]))
    return plans


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, base):
        self.base = base
        self.fhir = base + "/fhir/R4"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("cpis"), pytest.fail) as base:
        yield Server(base)


def fhir_get(server, path, token=ED_TOKEN, params=None, headers=None):
    h = {"Accept": FHIR_JSON}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return requests.get(server.fhir + path, params=params, headers=h, timeout=30)


def identifier(nhs):
    return {"patient:identifier": f"{NHS_SYSTEM}|{nhs}"}


def notifications(server, token):
    """Every notification of the token's LA, following the cursor."""
    out, after = [], None
    for _ in range(10_000):
        r = requests.get(
            server.base + "/api/v1/notifications",
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


def access_notification_ids(server, token, nhs):
    return {
        n["id"]
        for n in notifications(server, token)
        if n["kind"] == "access" and n["child"]["nhs_number"] == nhs
    }


# ---------------------------------------------------------------------------------------------
# Validation helpers


def assert_fhir_json(value, path="$"):
    """FHIR JSON representation rules (R4 2.6.2) the models don't enforce: no empty objects or
    arrays, no nulls, no empty strings."""
    if isinstance(value, dict):
        assert value, f"{path}: empty object"
        for k, v in value.items():
            assert v is not None, f"{path}.{k}: null"
            assert_fhir_json(v, f"{path}.{k}")
    elif isinstance(value, list):
        assert value, f"{path}: empty array"
        for i, v in enumerate(value):
            assert v is not None, f"{path}[{i}]: null"
            assert_fhir_json(v, f"{path}[{i}]")
    elif isinstance(value, str):
        assert value != "", f"{path}: empty string"


def validate(resource, expected_type=None):
    """Parse a resource's JSON into its FHIR R4 model (raises on any validation error)."""
    assert_fhir_json(resource)
    rtype = resource["resourceType"]
    if expected_type is not None:
        assert rtype == expected_type
    model = get_fhir_model_class(rtype).parse_obj(resource)
    assert model.resource_type == rtype
    return model


def assert_fhir_response(r, status):
    assert r.status_code == status, f"{r.status_code}: {r.text[:1000]}"
    assert r.headers["Content-Type"].startswith(FHIR_JSON), r.headers["Content-Type"]
    return r.json()


def validate_searchset(server, body, self_path, nhs):
    """Validates a searchset Bundle and every entry resource; returns (bundle, {type: [models]})."""
    bundle = validate(body, "Bundle")
    assert isinstance(bundle, Bundle)
    assert bundle.type == "searchset" and bundle.type in BUNDLE_TYPES
    assert bundle.id and bundle.meta and bundle.meta.lastUpdated
    links = {link.relation: link.url for link in bundle.link or []}
    assert links["self"] == f"{server.fhir}/{self_path}?patient:identifier={NHS_SYSTEM}|{nhs}"
    by_type = {}
    full_urls = set()
    for entry, raw_entry in zip(bundle.entry or [], body.get("entry", [])):
        raw = raw_entry["resource"]
        rtype = raw["resourceType"]
        assert entry.resource.resource_type == rtype
        model = validate(raw)
        assert entry.search.mode in SEARCH_ENTRY_MODES
        assert entry.fullUrl == f"{server.fhir}/{rtype}/{model.id}"
        assert entry.fullUrl not in full_urls, f"duplicate fullUrl {entry.fullUrl}"
        full_urls.add(entry.fullUrl)
        by_type.setdefault(rtype, []).append((entry.search.mode, model))
    matches = sum(1 for entry in bundle.entry or [] if entry.search.mode == "match")
    assert bundle.total == matches, "Bundle.total counts the matches, not the includes"
    return bundle, by_type


def check_contact_points(points):
    for cp in points:
        assert cp.system in CONTACT_POINT_SYSTEMS
        assert cp.use is None or cp.use in CONTACT_POINT_USES


def la_phones(ods):
    la = local_authority(ods)
    return {la["office_hours_phone"], la["edt_phone"]}


# ---------------------------------------------------------------------------------------------
# Tests: responses validate as FHIR R4


def test_models_are_fhir_r4():
    assert fhir.resources.__fhir_version__ == "4.0.1"


def test_validator_is_strict():
    """The models reject what a sloppy server might send, so a pass below means something."""
    with pytest.raises(Exception):
        CareTeam.parse_obj({"resourceType": "CareTeam", "notAnElement": True})
    with pytest.raises(Exception):
        Bundle.parse_obj({"resourceType": "Bundle", "type": "searchset", "total": "two"})
    with pytest.raises(Exception):
        AuditEvent.parse_obj({"resourceType": "AuditEvent", "recorded": "2026-11-01T00:00:00Z"})
    with pytest.raises(Exception):
        Patient.parse_obj({"resourceType": "Patient", "birthDate": "01/11/2026"})


def test_capability_statement_validates(server):
    body = assert_fhir_response(fhir_get(server, "/metadata", token=None), 200)
    cs = validate(body, "CapabilityStatement")
    assert isinstance(cs, CapabilityStatement)
    assert cs.fhirVersion == "4.0.1"
    assert cs.status in PUBLICATION_STATUS
    assert cs.kind in CAPABILITY_KINDS
    if cs.kind == "instance":
        assert cs.implementation is not None  # cpb-15
    assert any(f == "json" or f.startswith(FHIR_JSON) for f in cs.format)
    rest = cs.rest[0]
    assert rest.mode == "server"
    resources = {r.type: r for r in rest.resource}
    for rtype in ("CareTeam", "AuditEvent"):
        res = resources[rtype]
        assert {i.code for i in res.interaction} == {"search-type"}
        assert all(i.code in TYPE_INTERACTIONS for i in res.interaction)
        params = {p.name: p for p in res.searchParam}
        assert params["patient"].type == "reference"
        assert all(p.type in SEARCH_PARAM_TYPES for p in res.searchParam)


def test_care_team_search_validates(server):
    trace = f"pytest-{uuid.uuid4()}"
    r = fhir_get(server, "/CareTeam", params=identifier(SHARED_CHILD), headers={"TraceID": trace})
    body = assert_fhir_response(r, 200)
    assert r.headers["TraceID"] == trace
    bundle, by_type = validate_searchset(server, body, "CareTeam", SHARED_CHILD)

    care_teams = [m for mode, m in by_type["CareTeam"] if mode == "match"]
    organizations = {m.id: m for mode, m in by_type["Organization"] if mode == "include"}
    patients = [m for mode, m in by_type["Patient"] if mode == "include"]
    assert set(by_type) == {"CareTeam", "Organization", "Patient"}
    assert bundle.total == len(care_teams) >= 2  # one per record at least: two LAs hold the child

    # The included Patient is the child.
    assert len(patients) == 1
    patient = patients[0]
    assert isinstance(patient, Patient)
    assert (patient.identifier[0].system, patient.identifier[0].value) == (NHS_SYSTEM, SHARED_CHILD)
    # UK Core: the NHS number's verification status; then each LA's local id, assigned by the LA.
    status = patient.identifier[0].extension[0]
    assert status.url == "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
    assert status.valueCodeableConcept.coding[0].code == "01"
    assert {i.assigner.identifier.value for i in patient.identifier[1:]} == SHARED_CHILD_LAS
    dob = next(r["date_of_birth"] for r in read_csv("demographics.csv") if r["nhs_number"] == SHARED_CHILD)
    assert patient.birthDate.isoformat() == dob

    # One Organization per LA holding the child, with office-hours and EDT phones.
    assert set(organizations) == SHARED_CHILD_LAS
    for ods, org in organizations.items():
        assert isinstance(org, Organization)
        assert org.name == local_authority(ods)["name"]
        assert (ODS_SYSTEM, ods) in {(i.system, i.value) for i in org.identifier}
        check_contact_points(org.telecom)
        assert {t.value for t in org.telecom} == la_phones(ods)
        assert all(t.system == "phone" for t in org.telecom)
        for contact in org.contact or []:
            check_contact_points(contact.telecom or [])

    # One CareTeam per visible plan: category CPP/LAC/UCPP, period, the LA as manager and member,
    # the child as subject; references resolve inside the Bundle.
    seen = set()
    for ct in care_teams:
        assert isinstance(ct, CareTeam)
        assert ct.status in CARE_TEAM_STATUS
        codings = [c for cat in ct.category for c in cat.coding]
        assert len(codings) == 1 and codings[0].system == SNOMED, codings
        codes = [PLAN_TYPES[codings[0].code]]
        assert ct.name == local_authority(ct.managingOrganization[0].reference.split("/", 1)[1])["name"]
        assert ct.period is not None and ct.period.start is not None
        assert ct.subject.reference == f"Patient/{patient.id}"
        assert (ct.subject.identifier.system, ct.subject.identifier.value) == (NHS_SYSTEM, SHARED_CHILD)
        managers = [ref.reference for ref in ct.managingOrganization]
        assert len(managers) == 1 and managers[0].startswith("Organization/")
        la = managers[0].split("/", 1)[1]
        assert la in organizations
        assert [p.member.reference for p in ct.participant] == [f"Organization/{la}"]
        check_contact_points(ct.telecom or [])
        assert {t.value for t in ct.telecom or []} == la_phones(la)
        # The CP-IS data mapping: the emergency duty team number is use=mobile, office hours use=work.
        by_use = {t.use: t.value for t in ct.telecom}
        assert by_use == {
            "work": local_authority(la)["office_hours_phone"],
            "mobile": local_authority(la)["edt_phone"],
        }
        seen.add((la, codes[0]))

    # Against the demo uploads: every open plan shows; nothing shows that wasn't uploaded.
    plans = uploaded_plans(SHARED_CHILD)
    assert {(la, t) for la, t, end in plans if not end} <= seen
    assert seen <= {(la, t) for la, t, _ in plans}


def test_empty_bundle_for_unknown_child_validates(server):
    nhs = unknown_valid_nhs_number()
    body = assert_fhir_response(fhir_get(server, "/CareTeam", params=identifier(nhs)), 200)
    bundle = Bundle.parse_obj(body)
    assert bundle.type == "searchset"
    assert bundle.total == 0
    assert not bundle.entry
    assert {link.relation: link.url for link in bundle.link}["self"] == (
        f"{server.fhir}/CareTeam?patient:identifier={NHS_SYSTEM}|{nhs}"
    )


def test_empty_bundle_follows_fhir_json_rules(server):
    """No `"entry": []`: FHIR JSON has no empty arrays (the HL7 validator: 'Array cannot be empty')."""
    nhs = unknown_valid_nhs_number()
    body = assert_fhir_response(fhir_get(server, "/CareTeam", params=identifier(nhs)), 200)
    bundle, by_type = validate_searchset(server, body, "CareTeam", nhs)
    assert bundle.total == 0 and by_type == {}


def test_audit_event_search_validates(server):
    for _ in range(2):
        assert fhir_get(server, "/CareTeam", params=identifier(SHARED_CHILD)).status_code == 200
    body = assert_fhir_response(fhir_get(server, "/AuditEvent", params=identifier(SHARED_CHILD)), 200)
    bundle, by_type = validate_searchset(server, body, "AuditEvent", SHARED_CHILD)
    assert set(by_type) == {"AuditEvent", "PractitionerRole", "Patient"}
    assert all(mode == "include" for mode, _ in by_type["PractitionerRole"] + by_type["Patient"])
    roles = {m.id: m for _, m in by_type["PractitionerRole"]}
    assert all(isinstance(r, PractitionerRole) for r in roles.values())
    patient_ids = {m.id for _, m in by_type["Patient"]}
    events = [m for mode, m in by_type["AuditEvent"]]
    assert all(mode == "match" for mode, _ in by_type["AuditEvent"])
    assert 2 <= bundle.total == len(events) <= 25
    recorded = [e.recorded for e in events]
    assert recorded == sorted(recorded, reverse=True), "most recent first"
    for event in events:
        assert isinstance(event, AuditEvent)
        assert event.action in AUDIT_ACTIONS
        assert event.outcome is None or event.outcome in AUDIT_OUTCOMES
        # The CP-IS guide's shape: a lifecycle access event, the child (PAT) and the viewer
        # (ASSIGNED, the included PractitionerRole, also the observer).
        assert (event.type.system, event.type.code) == (
            "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle", "access")
        kinds = {a.type.coding[0].code: a for a in event.agent}
        assert set(kinds) == {"PAT", "ASSIGNED"}
        assert kinds["PAT"].requestor is False and kinds["ASSIGNED"].requestor is True
        assert kinds["PAT"].who.identifier.value == SHARED_CHILD
        assert kinds["PAT"].who.reference.split("/", 1)[1] in patient_ids
        role_id = kinds["ASSIGNED"].who.reference.split("/", 1)[1]
        assert event.source.observer.reference == kinds["ASSIGNED"].who.reference
        role = roles[role_id]
        assert role.practitioner.display and role.code[0].coding[0].display
        assert role.organization.identifier.system == ODS_SYSTEM
    assert ED_ODS in {r.organization.identifier.value for r in roles.values()}


def test_silent_lookup_is_not_in_access_history(server):
    def total():
        body = assert_fhir_response(fhir_get(server, "/AuditEvent", params=identifier(SHARED_CHILD)), 200)
        return validate(body, "Bundle").total

    before = total()
    r = fhir_get(server, "/CareTeam", params=identifier(SHARED_CHILD),
                 headers={"IsUnscheduledAccessEvent": "false"})
    validate(assert_fhir_response(r, 200), "Bundle")
    assert total() == before


ERROR_CASES = [
    # (id, path, token, params, status, issue codes allowed)
    ("bad-check-digit", "/CareTeam", ED_TOKEN, identifier("9990597635"), 400, {"invalid"}),
    ("not-digits", "/CareTeam", ED_TOKEN, identifier("99905976AB"), 400, {"invalid"}),
    ("wrong-system", "/CareTeam", ED_TOKEN, {"patient:identifier": f"urn:other|{SHARED_CHILD}"}, 400, {"invalid"}),
    ("audit-bad-nhs", "/AuditEvent", ED_TOKEN, identifier("12345"), 400, {"invalid"}),
    ("no-auth", "/CareTeam", None, identifier(SHARED_CHILD), 401, {"login", "security"}),
    ("unknown-token", "/CareTeam", "not-a-token", identifier(SHARED_CHILD), 401, {"login", "security", "unknown"}),
    ("la-token", "/CareTeam", COVENTRY_TOKEN, identifier(SHARED_CHILD), 403, {"forbidden", "security"}),
    ("la-token-audit", "/AuditEvent", COVENTRY_TOKEN, identifier(SHARED_CHILD), 403, {"forbidden", "security"}),
    ("unknown-resource", "/Patient", ED_TOKEN, None, 404, {"not-found", "not-supported"}),
]


# The CP-IS guide's error table (400 INVALID_SEARCH_DATA for a bad NHS number) and docs/FHIR.md.
SPINE_CODE = {400: "INVALID_SEARCH_DATA", 401: "ACCESS_DENIED", 403: "ACCESS_DENIED", 404: "RESOURCE_NOT_FOUND"}


@pytest.mark.parametrize(
    "path,token,params,status,codes", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_error_operation_outcome_validates(server, path, token, params, status, codes):
    trace = f"pytest-{uuid.uuid4()}"
    r = fhir_get(server, path, token=token, params=params, headers={"TraceID": trace})
    body = assert_fhir_response(r, status)
    assert r.headers["TraceID"] == trace
    oo = validate(body, "OperationOutcome")
    assert isinstance(oo, OperationOutcome)
    assert oo.issue
    for issue in oo.issue:
        assert issue.severity in ISSUE_SEVERITIES
        assert issue.code in ISSUE_TYPES
    assert oo.issue[0].severity == "error"
    assert oo.issue[0].code in codes, oo.issue[0].code
    assert oo.issue[0].diagnostics
    spine = [c for c in oo.issue[0].details.coding if c.system == SPINE_ERRORS]
    assert len(spine) == 1 and spine[0].code == SPINE_CODE[status], (status, spine)


# ---------------------------------------------------------------------------------------------
# Tests: an independent FHIR client (fhirpy)


def plain(value):
    """fhirpy's raw Bundle (an AttrDict holding fhirpy resources) as plain JSON data."""
    if hasattr(value, "serialize"):
        return value.serialize()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def fhirpy_client(server, trace, seen):
    def keep(response, *args, **kwargs):
        seen.append(response)

    return SyncFHIRClient(
        server.fhir,
        authorization=f"Bearer {ED_TOKEN}",
        extra_headers={"TraceID": trace},
        requests_config={"hooks": {"response": [keep]}, "timeout": 30},
    )


def test_fhirpy_care_team_search_notifies_each_la(server):
    before = {
        la: access_notification_ids(server, f"demo-{la}", SHARED_CHILD) for la in SHARED_CHILD_LAS
    }
    trace = f"fhirpy-{uuid.uuid4()}"
    seen = []
    client = fhirpy_client(server, trace, seen)

    care_teams = client.resources("CareTeam").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})
    ).fetch()

    assert len(seen) == 1, "one search, one request"
    response = seen[0]
    assert response.headers["TraceID"] == trace
    assert re.search(r"[?&]patient(:|%3A)identifier=", response.request.url), response.request.url
    assert len(care_teams) >= 2
    las = set()
    for resource in care_teams:
        ct = validate(resource.serialize(), "CareTeam")
        assert ct.subject.identifier.value == SHARED_CHILD
        las.add(ct.managingOrganization[0].reference.split("/", 1)[1])
    assert las == SHARED_CHILD_LAS

    # The lookup was unscheduled (an emergency department): each LA holding the child got exactly
    # one access notification for it, listed by GET /api/v1/notifications with the LA's token.
    after = {
        la: access_notification_ids(server, f"demo-{la}", SHARED_CHILD) for la in SHARED_CHILD_LAS
    }
    for la in SHARED_CHILD_LAS:
        new = after[la] - before[la]
        assert len(new) == 1, (la, new)
        note = next(n for n in notifications(server, f"demo-{la}") if n["id"] in new)
        assert note["kind"] == "access"
        assert note["la"] == la
        assert note["child"]["nhs_number"] == SHARED_CHILD
        assert note["access"]["organisation"]["ods_code"] == ED_ODS

    # Coventry (demo-E08000026) lists it, and sees only its own notifications.
    coventry = notifications(server, COVENTRY_TOKEN)
    assert any(
        n["kind"] == "access" and n["child"]["nhs_number"] == SHARED_CHILD and n["id"] in after["E08000026"]
        for n in coventry
    )
    assert all(n["la"] == "E08000026" for n in coventry)


def test_fhirpy_audit_event_search(server):
    trace = f"fhirpy-{uuid.uuid4()}"
    seen = []
    client = fhirpy_client(server, trace, seen)
    client.resources("CareTeam").search(Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})).fetch()
    bundle = client.resources("AuditEvent").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})
    ).fetch_raw()
    events = client.resources("AuditEvent").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})
    ).fetch()
    assert len(seen) == 3 and all(r.headers["TraceID"] == trace for r in seen)
    validate(plain(bundle), "Bundle")
    assert 1 <= len(events) <= 25
    for resource in events:
        event = validate(resource.serialize(), "AuditEvent")
        assert event.agent


def test_trace_id_is_echoed_or_generated(server):
    trace = f"requests-{uuid.uuid4()}"
    r = fhir_get(server, "/CareTeam", params=identifier(SHARED_CHILD), headers={"TraceID": trace})
    assert r.status_code == 200 and r.headers["TraceID"] == trace
    r = fhir_get(server, "/AuditEvent", params=identifier(SHARED_CHILD), headers={"TraceID": trace})
    assert r.status_code == 200 and r.headers["TraceID"] == trace
    r = fhir_get(server, "/metadata", token=None)
    assert r.status_code == 200 and r.headers.get("TraceID"), "a TraceID is generated when none is sent"


UPLOAD_HEADER = (
    "action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,"
    "end_date,expected_delivery_date,sensitive"
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_upload_report_csv_cells_never_read_as_formulas(server):
    """The per-record report echoes what a file held; read as a spreadsheet would read it (Python's
    csv module), no cell may start a formula (OWASP CSV injection)."""
    payloads = ['=HYPERLINK("http://x.example")', "+1+1", "-2+3", "@SUM(1)", "=1"]
    rows = [f"upsert,{p},L{i},A,B,2015-01-01,CPP,2025-01-01,,,false" for i, p in enumerate(payloads)]
    body = "\n".join([UPLOAD_HEADER, *rows]) + "\n"
    # Quote the payload holding commas and quotes as a CSV writer would.
    body = body.replace(payloads[0], '"' + payloads[0].replace('"', '""') + '"')
    r = requests.post(
        server.base + "/api/v1/uploads",
        params={"mode": "delta", "file_id": f"formula-{uuid.uuid4()}", "file_date": "2026-11-20"},
        headers={"Authorization": f"Bearer {COVENTRY_TOKEN}", "Content-Type": "text/csv"},
        data=body.encode(),
        timeout=30,
    )
    assert r.status_code in (201, 422), r.text
    upload_id = r.json()["id"]
    report = requests.get(
        server.base + f"/api/v1/uploads/{upload_id}",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {COVENTRY_TOKEN}"},
        timeout=30,
    )
    assert report.status_code == 200
    cells = list(csv.reader(report.text.splitlines()))
    assert cells[0][0] == "row"
    assert len(cells) == 1 + len(payloads)
    for line in cells[1:]:
        for cell in line:
            assert not cell.startswith(FORMULA_STARTS), line
    assert {line[1] for line in cells[1:]} == {"'" + p for p in payloads}


def test_missing_parameter_is_a_failed_precondition(server):
    r = fhir_get(server, "/CareTeam", params=None)
    oo = validate(assert_fhir_response(r, 400), "OperationOutcome")
    assert oo.issue[0].code == "invalid"
    assert [c.code for c in oo.issue[0].details.coding if c.system == SPINE_ERRORS] == ["PRECONDITION_FAILED"]


def test_the_nhs_base_path_serves_the_same_api_to_fhirpy(server):
    """A client configured with the CP-IS guide's base path (`/cpis/FHIR/R4`) works unmodified."""
    client = SyncFHIRClient(
        server.base + "/cpis/FHIR/R4",
        authorization=f"Bearer {ED_TOKEN}",
        extra_headers={"IsUnscheduledAccessEvent": "false"},
        requests_config={"timeout": 30},
    )
    teams = client.resources("CareTeam").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})
    ).fetch()
    assert len(teams) >= 2
    for resource in teams:
        ct = validate(resource.serialize(), "CareTeam")
        assert ct.category[0].coding[0].system == SNOMED
    raw = client.resources("AuditEvent").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})
    ).fetch_raw()
    bundle = validate(plain(raw), "Bundle")
    assert all("/cpis/FHIR/R4/" in e.fullUrl for e in bundle.entry or [])
    metadata = validate(assert_fhir_response(
        requests.get(server.base + "/cpis/FHIR/R4/metadata", timeout=30), 200), "CapabilityStatement")
    assert metadata.instantiates == ["https://fhir.nhs.uk/CapabilityStatement/CPIS-FHIR-API-Producer"]


def test_cpis_own_definitions_validate_and_are_where_their_urls_point(server):
    """The EDD extension and the care-setting-type code system cpis emits are served, as FHIR R4
    StructureDefinition and CodeSystem resources whose `url` is the one responses carry."""
    sd = validate(assert_fhir_response(
        fhir_get(server, "/StructureDefinition/expected-delivery-date", token=None), 200),
        "StructureDefinition")
    assert sd.url == f"{server.fhir}/StructureDefinition/expected-delivery-date"
    assert sd.type == "Extension" and sd.kind == "complex-type"
    cs = validate(assert_fhir_response(
        fhir_get(server, "/CodeSystem/care-setting-type", token=None), 200), "CodeSystem")
    assert cs.url == f"{server.fhir}/CodeSystem/care-setting-type"
    assert "emergency-department" in {c.code for c in cs.concept}
    # The history names the setting type under that system.
    fhir_get(server, "/CareTeam", params=identifier(SHARED_CHILD))
    body = assert_fhir_response(fhir_get(server, "/AuditEvent", params=identifier(SHARED_CHILD)), 200)
    systems = {c["system"] for e in body["entry"] if e["resource"]["resourceType"] == "AuditEvent"
               for a in e["resource"]["agent"] for r in a.get("role", []) for c in r.get("coding", [])}
    assert systems == {cs.url}
