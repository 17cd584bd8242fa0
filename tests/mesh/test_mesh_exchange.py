"""cpis as a MESH mailbox, checked with NHS England's own tools (SPEC 3.4, docs/MESH.md).

Local authorities are played by NHS England's Python `mesh-client`, talking to NHS England's
`mesh-sandbox`; cpis (`cpis serve --demo` with the MESH worker on) polls its own mailbox there.
Run by crates/cpis-cli/tests/mesh_python.rs, which `scripts/test` enables.
"""

import csv
import io
import json
import os
import subprocess
import time
import uuid

import requests

from conftest import CPIS_MAILBOX, DEMO, wait_until

COVENTRY = "E08000026"
COVENTRY_MAILBOX = "LA081OT"
WESTMINSTER_MAILBOX = "LA125OT"
SHARED_CHILD = "9990597634"  # demo: on plans with Coventry and Westminster
ED_TOKEN = "demo-RDEMO01"  # an emergency department: its lookups notify
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def cpis_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CPIS_")}


def take_all(client):
    """Every message in the mailbox: downloaded, acknowledged, returned with its headers."""
    out = []
    for message_id in client.list_messages():
        msg = client.retrieve_message(message_id)
        body = msg.read()
        out.append({
            "id": message_id,
            "workflow": msg.mex_header("workflowid"),
            "local_id": msg.mex_header("localid"),
            "from": msg.mex_header("from"),
            "subject": msg.mex_header("subject"),
            "body": body,
        })
        msg.acknowledge()
    return out


def collect(client, want, timeout=60, settle=0.0):
    """Takes messages until `want(messages)` holds, then (optionally) keeps taking for `settle`
    seconds more so that duplicates arriving late are seen too."""
    got = []

    def enough():
        got.extend(take_all(client))
        return want(got)

    wait_until("MESH messages", enough, timeout=timeout, every=0.3)
    if settle:
        time.sleep(settle)
        got.extend(take_all(client))
    return got


def demo_rows(la, n):
    with open(DEMO / "uploads" / f"{la}.csv", newline="", encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    return "\n".join(lines[: n + 1]) + "\n", n


def send_upload(la_client, data, subject="mode=delta", local_id=None, workflow="CPIS_UPLOAD"):
    return la_client.send_message(
        CPIS_MAILBOX, data.encode() if isinstance(data, str) else data,
        workflow_id=workflow, subject=subject, local_id=local_id or f"test-{uuid.uuid4()}",
        filename="upload.csv",
    )


def report_for(messages, sent_id):
    matches = [m for m in messages if m["local_id"] == f"cpis-report-{sent_id}"]
    assert len(matches) == 1, f"expected one report for {sent_id}, got {len(matches)}"
    m = matches[0]
    assert m["workflow"] == "CPIS_UPLOAD_REPORT"
    assert m["from"] == CPIS_MAILBOX
    return json.loads(m["body"])


def lookup(cpis, nhs):
    r = requests.get(
        cpis.base + "/fhir/R4/CareTeam",
        params={"patient:identifier": f"{NHS_SYSTEM}|{nhs}"},
        headers={"Authorization": f"Bearer {ED_TOKEN}", "Accept": "application/fhir+json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r


def api_access_notification_ids(cpis, la):
    r = requests.get(cpis.base + "/api/v1/notifications", params={"limit": 1000},
                     headers={"Authorization": f"Bearer demo-{la}"}, timeout=30)
    assert r.status_code == 200, r.text
    return [n["id"] for n in r.json()["notifications"] if n["kind"] == "access"]


def access_messages(messages):
    return [m for m in messages if m["workflow"] == "CPIS_ACCESS_NOTIFICATION"]


# ---------------------------------------------------------------------------------------------


def test_an_la_upload_is_applied_and_answered_with_a_report(sandbox, cpis):
    la = sandbox.client(COVENTRY_MAILBOX)
    la.handshake()
    data, rows = demo_rows(COVENTRY, 5)
    sent = send_upload(la, data, subject="mode=delta; file_date=2026-11-24", local_id="COV-MESH-1")
    report = report_for(collect(la, lambda ms: any(m["local_id"] == f"cpis-report-{sent}" for m in ms)), sent)

    assert report["mesh_message_id"] == sent
    assert report["la"] == COVENTRY
    assert report["channel"] == "mesh"
    assert report["file_id"] == "COV-MESH-1"
    assert report["mode"] == "delta"
    assert report["file_date"] == "2026-11-24"
    assert report["file_outcome"] == "CPF02", report
    assert report["counts"]["rows"] == rows
    assert report["counts"]["accepted"] == rows
    records = list(csv.DictReader(io.StringIO(report["records_csv"])))
    assert [r["row"] for r in records] == [str(i) for i in range(1, rows + 1)]
    assert {r["outcome"] for r in records} == {"CPR06"}  # accepted

    # The same upload as the API reports it to the LA.
    r = requests.get(f"{cpis.base}/api/v1/uploads/{report['id']}",
                     headers={"Authorization": f"Bearer demo-{COVENTRY}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == report["counts"]
    assert r.json()["channel"] == "mesh"

    # cpis acknowledged the upload: its inbox is empty.
    cpis_box = sandbox.client(CPIS_MAILBOX)
    wait_until("cpis's inbox to be empty", lambda: cpis_box.list_messages() == [])


def test_a_file_with_errors_gets_every_record_outcome(sandbox, cpis):
    la = sandbox.client(COVENTRY_MAILBOX)
    data = (DEMO / "uploads" / f"errors-{COVENTRY}.csv").read_bytes()
    sent = send_upload(la, data)
    report = report_for(collect(la, lambda ms: any(m["local_id"] == f"cpis-report-{sent}" for m in ms)), sent)
    assert report["file_outcome"] in {"CPF03", "CPF04"}, report
    records = list(csv.DictReader(io.StringIO(report["records_csv"])))
    assert len(records) == report["counts"]["rows"] > 0
    rejected = [r for r in records if r["outcome"] != "CPR06"]
    assert len(rejected) == report["counts"]["rejected"] > 0
    assert all(r["detail_code"] or r["message"] for r in rejected)


def test_a_file_sent_again_is_recognised_and_reported_once_per_message(sandbox, cpis):
    la = sandbox.client(COVENTRY_MAILBOX)
    data, _ = demo_rows(COVENTRY, 3)
    first = send_upload(la, data, local_id="COV-MESH-REPLAY")
    again = send_upload(la, data, local_id="COV-MESH-REPLAY")
    got = collect(la, lambda ms: {f"cpis-report-{first}", f"cpis-report-{again}"}
                  <= {m["local_id"] for m in ms}, settle=2)
    a, b = report_for(got, first), report_for(got, again)
    assert a["file_outcome"] == "CPF02", a
    # The replay's report says it is a duplicate, in fields and in words, and names the first.
    assert b["status"] == "duplicate", b
    assert b["duplicate_of"] == a["id"], b
    assert b["file_outcome"] is None, b
    assert b["message"].startswith("Duplicate: nothing was applied."), b
    assert a["id"] in b["message"], b
    assert len([m for m in got if m["workflow"] == "CPIS_UPLOAD_REPORT"]) == 2


def test_messages_cpis_cannot_take_are_refused_with_a_reason_and_acknowledged(sandbox, cpis):
    la = sandbox.client(COVENTRY_MAILBOX)
    data, _ = demo_rows(COVENTRY, 2)
    bad_subject = send_upload(la, data, subject="mode=weekly")
    bad_workflow = send_upload(la, data, workflow="SOME_OTHER_WORKFLOW")
    stranger = sandbox.client("UNKNOWN1")
    from_stranger = send_upload(stranger, data)

    got = collect(la, lambda ms: {f"cpis-report-{bad_subject}", f"cpis-report-{bad_workflow}"}
                  <= {m["local_id"] for m in ms})
    subject_report = report_for(got, bad_subject)
    assert subject_report["file_outcome"] == "CPF01"
    assert "mex-Subject" in subject_report["message"]
    workflow_report = report_for(got, bad_workflow)
    assert workflow_report["file_outcome"] == "CPF01"
    assert "SOME_OTHER_WORKFLOW" in workflow_report["message"]

    stranger_report = report_for(
        collect(stranger, lambda ms: any(m["local_id"] == f"cpis-report-{from_stranger}" for m in ms)),
        from_stranger)
    assert stranger_report["file_outcome"] == "CPF01"
    assert "not registered" in stranger_report["message"]
    cpis_box = sandbox.client(CPIS_MAILBOX)
    wait_until("cpis's inbox to be empty", lambda: cpis_box.list_messages() == [])


def test_lookups_notify_each_la_mailbox_once(sandbox, cpis):
    cov, wes = sandbox.client(COVENTRY_MAILBOX), sandbox.client(WESTMINSTER_MAILBOX)
    take_all(cov), take_all(wes)
    lookup(cpis, SHARED_CHILD)
    for client, la in [(cov, COVENTRY), (wes, "E09000033")]:
        got = access_messages(collect(client, lambda ms: len(access_messages(ms)) >= 1, settle=2))
        assert len(got) == 1, got
        body = json.loads(got[0]["body"])
        assert body["kind"] == "access"
        assert got[0]["local_id"] == f"cpis-notification-{body['id']}"
        assert body["id"] in api_access_notification_ids(cpis, la)
        assert body["child"]["nhs_number"] == SHARED_CHILD


def test_a_mesh_outage_loses_nothing_and_duplicates_nothing(sandbox, cpis):
    cov = sandbox.client(COVENTRY_MAILBOX)
    take_all(cov)
    before = set(api_access_notification_ids(cpis, COVENTRY))
    sandbox.stop()
    for _ in range(5):
        lookup(cpis, SHARED_CHILD)
    time.sleep(3)  # cpis retries against a MESH that is down
    sandbox.start()
    new = set(api_access_notification_ids(cpis, COVENTRY)) - before
    assert len(new) == 5
    got = access_messages(collect(cov, lambda ms: len(access_messages(ms)) >= 5, timeout=90, settle=3))
    ids = [json.loads(m["body"])["id"] for m in got]
    assert sorted(ids) == sorted(new), "each notification arrives exactly once"


def test_cpis_killed_mid_run_resumes_without_loss_or_duplicates(sandbox, cpis):
    cov = sandbox.client(COVENTRY_MAILBOX)
    take_all(cov)
    before = set(api_access_notification_ids(cpis, COVENTRY))
    for _ in range(10):
        lookup(cpis, SHARED_CHILD)
    cpis.kill()
    # While cpis is down, Coventry sends an upload: it waits in cpis's mailbox.
    data, _ = demo_rows(COVENTRY, 4)
    sent = send_upload(cov, data, local_id="COV-MESH-WHILE-DOWN")
    cpis.start()
    new = set(api_access_notification_ids(cpis, COVENTRY)) - before
    assert len(new) == 10
    got = collect(cov, lambda ms: len(access_messages(ms)) >= 10
                  and any(m["local_id"] == f"cpis-report-{sent}" for m in ms), timeout=120, settle=3)
    ids = [json.loads(m["body"])["id"] for m in access_messages(got)]
    assert sorted(ids) == sorted(new), "each notification arrives exactly once"
    assert report_for(got, sent)["file_outcome"] == "CPF02"


def test_operators_see_the_outbox_and_can_check_the_mailbox(sandbox, cpis):
    run = lambda *args, config=cpis.config: subprocess.run(  # noqa: E731
        [cpis.binary, "--config", str(config), "--database", f"sqlite://{cpis.tmp / 'cpis.db'}", *args],
        capture_output=True, text=True, timeout=60, env=cpis_env(),
    )
    # Messages a killed cpis had claimed wait for their lease (30 s here) before they go.
    wait_until("the outbox to drain", lambda: run("mesh", "outbox", "--unsent").stdout.splitlines()[1:] == [],
               timeout=90, every=1)
    outbox = run("mesh", "outbox", "--limit", "500")
    assert outbox.returncode == 0, outbox.stderr
    lines = outbox.stdout.splitlines()[1:]
    assert lines and all(line.startswith("sent ") for line in lines if not line.startswith(" ")), outbox.stdout
    assert any("CPIS_UPLOAD_REPORT" in line for line in lines)
    assert any("CPIS_ACCESS_NOTIFICATION" in line for line in lines)

    ok = run("mesh", "handshake")
    assert ok.returncode == 0, ok.stderr
    assert "CPIS0MB1: authenticated" in ok.stdout
    wrong = cpis.tmp / "wrong-key.toml"
    wrong.write_text(cpis.config.read_text().replace('shared_key = "', 'shared_key = "not-'))
    refused = run("mesh", "handshake", config=wrong)
    assert refused.returncode != 0
    assert "403" in refused.stderr or "Rejected" in refused.stderr or "refused" in refused.stderr.lower(), refused.stderr
