"""Fixtures for the MESH integration tests: NHS England's mesh-sandbox and `cpis serve`.

The sandbox runs from this virtual environment (`python -m uvicorn mesh_sandbox.api:app`) with
full authentication and its file store, so messages survive a sandbox restart (the outage
tests stop and start it). cpis runs as `cpis serve --demo` (binary from CPIS_BIN) with a
`[mesh]` section pointing at the sandbox; every demo LA's mailbox exists in the sandbox.
"""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mesh_client import MeshClient

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
SHARED_KEY = "cpis-mesh-test-key"
PASSWORD = "password"  # the sandbox's password for every mailbox of its file store
CPIS_MAILBOX = "CPIS0MB1"
STARTUP_SECONDS = 180


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_las():
    with open(DEMO / "local_authorities.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wait_until(what, check, timeout=60, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Sandbox:
    """mesh-sandbox on a fixed port and data directory, so it can be stopped and started."""

    def __init__(self, tmp):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = tmp / "mailboxes"
        self.log_path = tmp / "sandbox.log"
        self.proc = None
        self.clients = []
        for mailbox in [CPIS_MAILBOX, "UNKNOWN1"] + [la["mesh_mailbox"] for la in demo_las()]:
            (self.data / mailbox.upper() / "in").mkdir(parents=True, exist_ok=True)

    def start(self):
        env = dict(os.environ, AUTH_MODE="full", STORE_MODE="file", SHARED_KEY=SHARED_KEY,
                   MAILBOXES_DATA_DIR=str(self.data), ENV="local")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "mesh_sandbox.api:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"mesh-sandbox exited:\n{self.log_tail()}")
            try:
                return requests.get(self.url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until("mesh-sandbox to answer", up, timeout=60)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def client(self, mailbox):
        client = MeshClient(self.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(),
                            verify=False, max_retries=0, timeout=30)
        self.clients.append(client)
        return client

    def close_clients(self):
        for client in self.clients:
            client.close()
        self.clients.clear()


class Cpis:
    """`cpis serve --demo` with the MESH worker on; can be killed and started again."""

    def __init__(self, tmp, sandbox):
        self.binary = os.environ.get("CPIS_BIN")
        if not self.binary:
            pytest.fail("CPIS_BIN must name the cpis binary (crates/cpis-cli/tests/mesh_python.rs sets it)")
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "cpis.log"
        self.config = tmp / "cpis.toml"
        self.config.write_text(
            f"""
[mesh]
url = "{sandbox.url}"
mailbox_id = "{CPIS_MAILBOX}"
password = "{PASSWORD}"
shared_key = "{SHARED_KEY}"
inbox_poll_seconds = 1
send_interval_ms = 100

[mesh.retry]
first_retry_seconds = 1
max_backoff_seconds = 2
give_up_after_hours = 72
lease_seconds = 30
""",
            encoding="utf-8",
        )
        self.proc = None

    def start(self):
        # The server's settings come from its command line and config file only.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIS_")}
        env["CPIS_LOG"] = "info"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--demo", "--bind", f"127.0.0.1:{self.port}",
             "--config", str(self.config),
             "--database", f"sqlite://{self.tmp / 'cpis.db'}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.tmp,
        )
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"cpis exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return requests.get(self.base + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until("cpis to be ready", ready, timeout=STARTUP_SECONDS)

    def kill(self):
        """SIGKILL: no chance to finish anything in flight."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = Sandbox(tmp_path_factory.mktemp("mesh"))
    sb.start()
    yield sb
    sb.close_clients()
    sb.stop()


@pytest.fixture(scope="module")
def cpis(tmp_path_factory, sandbox):
    server = Cpis(tmp_path_factory.mktemp("cpis"), sandbox)
    server.start()
    yield server
    server.stop()
