"""`cpis serve --demo` for the Python suites (tests/python, tests/openapi): started on a free
loopback port with a fresh database in a temporary folder, stopped at the end.

The binary is the one named by CPIS_BIN (the Rust test that runs the suite sets it); the server's
own settings come from the command line only, never from the caller's CPIS_* variables.
"""

import contextlib
import os
import socket
import subprocess
import time

import requests

STARTUP_SECONDS = 180


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def demo_server(tmp, fail, database=None):
    """Yields the base URL of a ready demo server; `fail(message)` ends the test run. `database`
    is a database URL prepared beforehand (default: a new SQLite file in `tmp`)."""
    binary = os.environ.get("CPIS_BIN")
    if not binary:
        fail("CPIS_BIN must name the cpis binary (the Rust test that runs this suite sets it)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIS_")}
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "serve", "--demo", "--bind", f"127.0.0.1:{port}",
             "--database", database or f"sqlite://{tmp / 'cpis.db'}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=tmp,
        )

    def log_tail():
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                fail(f"cpis serve exited with {proc.returncode} before ready:\n{log_tail()}")
            try:
                if requests.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                fail(f"cpis serve not ready after {STARTUP_SECONDS}s:\n{log_tail()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
