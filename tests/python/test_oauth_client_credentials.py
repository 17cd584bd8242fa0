"""NHS API-platform-style application-restricted access against a running cpis.

A client written the way the NHS API platform's "signed JWT authentication" guide describes:
PyJWT signs an RS512 client assertion (`iss = sub = client id`, `aud` = the token URL, a fresh
`jti`, `exp` within five minutes) with the client's private key, and `POST /oauth2/token`
answers an access token. The LA's system then reads its notifications with it; `fhirpy` reads
CareTeam with an application-only token (refused: unattended access is not a suitable pattern)
and with one of a client registered for unattended lookups (allowed). Replayed `jti`, expired
and over-long `exp`, another `aud`, an unknown `kid`, and HS256 "signed" with the public key as
the secret are all refused (RFC 6749 errors), and every refusal is in the audit trail.

The clients are registered with `cpis clients add` before `cpis serve --demo` starts on a free
loopback port with a temporary database; the suite builds nothing (CPIS_BIN names the binary).
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fhir.resources.operationoutcome import OperationOutcome
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError
from fhirpy.base.searchset import Raw

from test_fhir_api import NHS_SYSTEM, SHARED_CHILD
from cpis_server import demo_server

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
COVENTRY = "E08000026"
ED = "RDEMO01"


def b64url(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Client:
    """A client system with its RSA key pair."""

    def __init__(self, client_id, kid):
        self.client_id = client_id
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self):
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS512",
                          "n": b64url(numbers.n), "e": b64url(numbers.e)}]}

    def assertion(self, token_url, *, jti=None, exp_in=240, aud=None, kid=None, alg="RS512",
                  key=None):
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": aud or token_url,
                  "jti": jti or str(uuid.uuid4()), "exp": now + exp_in}
        return jwt.encode(claims, key or self.key, algorithm=alg,
                          headers={"kid": kid or self.kid})


def run_cli(binary, *args, env):
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, f"cpis {' '.join(args)}: {out.stdout}{out.stderr}"
    return out.stdout


class Server:
    def __init__(self, base, clients):
        self.base = base
        self.fhir = base + "/fhir/R4"
        self.token_url = base + "/oauth2/token"
        self.clients = clients


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = os.environ.get("CPIS_BIN")
    if not binary:
        pytest.fail("CPIS_BIN must name the cpis binary (crates/cpis-cli/tests/fhir_python.rs sets it)")
    tmp = tmp_path_factory.mktemp("cpis-oauth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIS_")}
    db = f"sqlite://{tmp / 'cpis.db'}"
    clients = {
        "la": Client("coventry-case-system", "coventry-2026-1"),
        "ed": Client("ed-triage-system", "ed-2026-1"),
        "ed_unattended": Client("ed-kiosk-system", "kiosk-2026-1"),
    }
    run_cli(binary, "--database", db, "migrate", env=env)
    registrations = [
        ("la", COVENTRY, "la:upload la:notifications", []),
        ("ed", ED, "cpis:view-notify", []),
        ("ed_unattended", ED, "cpis:view-notify", ["--allow-unattended-lookups"]),
    ]
    for name, org, permissions, extra in registrations:
        jwks = tmp / f"{name}.jwks.json"
        jwks.write_text(json.dumps(clients[name].jwks()))
        run_cli(binary, "--database", db, "clients", "add", clients[name].client_id,
                "--org", org, "--permissions", permissions, "--jwks-file", str(jwks), *extra,
                env=env)
    listed = run_cli(binary, "--database", db, "clients", "list", env=env)
    assert "ed-kiosk-system" in listed and "allowed" in listed

    with demo_server(tmp, pytest.fail, database=db) as base:
        yield Server(base, clients)


def token_request(server, assertion, **overrides):
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion}
    form.update(overrides)
    return requests.post(server.token_url, data=form, timeout=30)


def access_token(server, client):
    r = token_request(server, client.assertion(server.token_url))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    assert 0 < int(body["expires_in"]) <= 600
    assert r.headers["Cache-Control"] == "no-store"
    return body["access_token"]


def test_an_la_system_reads_its_notifications_with_a_signed_jwt_token(server):
    token = access_token(server, server.clients["la"])
    r = requests.get(server.base + "/api/v1/notifications", params={"limit": 5},
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(n["la"] == COVENTRY for n in body["notifications"])
    # Its permissions are the registered ones: no clinical lookup, no other LA.
    r = requests.get(server.fhir + "/CareTeam",
                     params={"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"},
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
                     timeout=30)
    assert r.status_code == 403


def fhirpy(server, token):
    return SyncFHIRClient(server.fhir, authorization=f"Bearer {token}",
                          extra_headers={"IsUnscheduledAccessEvent": "true"},
                          requests_config={"timeout": 30})


def test_an_application_only_token_may_not_look_a_child_up(server):
    token = access_token(server, server.clients["ed"])
    client = fhirpy(server, token)
    with pytest.raises(ForbiddenError) as refused:
        client.resources("CareTeam").search(
            Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})).fetch_all()
    OperationOutcome.parse_obj(json.loads(str(refused.value)))
    r = requests.get(server.fhir + "/CareTeam",
                     params={"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"},
                     headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
                     timeout=30)
    assert r.status_code == 403
    outcome = OperationOutcome.parse_obj(r.json())
    assert "unattended" in json.dumps(r.json())
    assert outcome.issue[0].code == "forbidden"


def test_a_client_registered_for_unattended_lookups_may(server):
    token = access_token(server, server.clients["ed_unattended"])
    client = fhirpy(server, token)
    teams = client.resources("CareTeam").search(
        Raw(**{"patient:identifier": f"{NHS_SYSTEM}|{SHARED_CHILD}"})).fetch_all()
    assert len(teams) >= 2


def hs256_with_public_key(client, token_url):
    """The classic algorithm-confusion forgery: HMAC 'signed' with the public key as the secret."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    header = part({"alg": "HS256", "typ": "JWT", "kid": client.kid})
    payload = part({"iss": client.client_id, "sub": client.client_id, "aud": token_url,
                    "jti": str(uuid.uuid4()), "exp": int(time.time()) + 120})
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(client.public_pem, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def test_bad_assertions_are_refused_and_audited(server):
    la = server.clients["la"]
    url = server.token_url
    before = audit_denied_token_requests(server)

    # Replay: the same jti twice (the first one works).
    jti = str(uuid.uuid4())
    assert token_request(server, la.assertion(url, jti=jti)).status_code == 200
    replay = token_request(server, la.assertion(url, jti=jti))

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "replayed jti": replay,
        "expired exp": token_request(server, la.assertion(url, exp_in=-30)),
        "exp over 5 minutes": token_request(server, la.assertion(url, exp_in=600)),
        "wrong aud": token_request(server, la.assertion(url, aud=server.base + "/token")),
        "unknown kid": token_request(server, la.assertion(url, kid="not-registered")),
        "another key": token_request(server, la.assertion(url, key=other_key)),
        "HS256 with the public key": token_request(server, hs256_with_public_key(la, url)),
        "RS256": token_request(server, la.assertion(url, alg="RS256")),
        "unknown client": token_request(server, Client("nobody-system", "k").assertion(url)),
        "wrong grant": token_request(server, la.assertion(url), grant_type="password"),
        "no assertion type": token_request(server, la.assertion(url), client_assertion_type="x"),
    }
    for name, r in cases.items():
        assert r.status_code in (400, 401), f"{name}: {r.status_code} {r.text}"
        body = r.json()
        assert body["error"] in {"invalid_request", "invalid_client", "invalid_grant",
                                 "unsupported_grant_type"}, f"{name}: {body}"
        assert body.get("error_description"), name
        assert "access_token" not in body, name
    assert cases["replayed jti"].status_code == 400
    assert "jti" in cases["replayed jti"].json()["error_description"]
    assert cases["wrong grant"].json()["error"] == "unsupported_grant_type"
    assert cases["unknown kid"].json()["error"] == "invalid_client"
    assert cases["HS256 with the public key"].json()["error"] == "invalid_client"
    assert cases["another key"].json()["error"] == "invalid_client"

    # Not a form at all.
    r = requests.post(url, json={"grant_type": "client_credentials"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"

    after = audit_denied_token_requests(server)
    assert after - before >= len(cases) + 1, (before, after)


def audit_denied_token_requests(server):
    r = requests.get(server.base + "/api/v1/audit",
                     params={"action": "auth.token", "limit": 500},
                     headers={"Authorization": "Bearer demo-auditor"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    entries = body["entries"] if isinstance(body, dict) else body
    return sum(1 for e in entries if e["outcome"] == "denied")
