#!/usr/bin/env python3
"""Lookup -> notification latency probe for cpis (standard library only).

Opens the LA's server-sent-events stream, then makes N notifying lookups one after another and
measures, for each, the time from sending the lookup to the LA receiving its notification on the
stream. Prints p50/p90/p99/max in milliseconds.

With --webhook-port and --webhook-secret the probe also runs a webhook receiver on
127.0.0.1:PORT (register http://127.0.0.1:PORT/hook for the LA first, with
`cpis webhooks add` and `[webhook_destinations] allow_http_loopback = true`): each lookup is then
also timed until the webhook POST carrying the same notification id arrives (its signature is
checked with the secret), and the webhook figures are printed beside the SSE ones.

Usage: notify_latency_probe.py BASE_URL LA_TOKEN CLINICIAN_TOKEN NHS_NUMBER [N]
                               [--webhook-port PORT --webhook-secret SECRET]
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import socket
import threading
import time
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("la_token")
ap.add_argument("clin_token")
ap.add_argument("nhs")
ap.add_argument("n", nargs="?", type=int, default=200)
ap.add_argument("--webhook-port", type=int)
ap.add_argument("--webhook-secret")
args = ap.parse_args()
base, la_token, clin_token, nhs, n = args.base, args.la_token, args.clin_token, args.nhs, args.n
u = urllib.parse.urlparse(base)
host, port = u.hostname, u.port or 80

# Start the stream after the LA's current newest notification.
c = http.client.HTTPConnection(host, port)
cursor = "0"
while True:
    c.request("GET", f"/api/v1/notifications?after={cursor}&limit=1000", headers={"Authorization": f"Bearer {la_token}"})
    page = json.loads(c.getresponse().read())
    if not page["notifications"]:
        break
    cursor = page["next_cursor"]

arrivals = []  # (perf_counter, notification id) in stream order
webhooks = {}  # notification id -> perf_counter of its first webhook POST
bad_signatures = 0
cond = threading.Condition()


def stream():
    s = socket.create_connection((host, port))
    s.sendall(
        f"GET /api/v1/notifications/stream?after={cursor} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {la_token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            now = time.perf_counter()
            data = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
            if data:
                try:
                    nid = json.loads(b"\n".join(data)).get("id")
                except ValueError:
                    nid = None
                with cond:
                    arrivals.append((now, nid))
                    cond.notify_all()


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver as an LA would run one: checks the signature, answers 2xx."""

    def do_POST(self):
        global bad_signatures
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        now = time.perf_counter()
        nid = self.headers.get("CPIS-Notification-Id")
        parts = dict(p.split("=", 1) for p in self.headers.get("CPIS-Signature", "").split(",") if "=" in p)
        want = hmac.new(args.webhook_secret.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, parts.get("v1", ""))
        with cond:
            if not ok:
                bad_signatures += 1
            elif nid not in webhooks:
                webhooks[nid] = now
            cond.notify_all()
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *a):
        pass


if args.webhook_port:
    assert args.webhook_secret, "--webhook-secret is needed with --webhook-port"
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", args.webhook_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()

threading.Thread(target=stream, daemon=True).start()
time.sleep(0.5)
lookup = http.client.HTTPConnection(host, port)
path = "/fhir/R4/CareTeam?patient:identifier=" + urllib.parse.quote(f"https://fhir.nhs.uk/Id/nhs-number|{nhs}", safe=":/")
lat = []
hook_lat = []
for i in range(n):
    with cond:
        before = len(arrivals)
    t0 = time.perf_counter()
    lookup.request("GET", path, headers={"Authorization": f"Bearer {clin_token}", "IsUnscheduledAccessEvent": "true"})
    r = lookup.getresponse()
    r.read()
    assert r.status == 200, r.status
    # Only this LA's stream is watched: one notification per lookup for it.
    with cond:
        ok = cond.wait_for(lambda: len(arrivals) > before, timeout=10)
        assert ok, "notification not seen within 10 s"
        seen, nid = arrivals[before]
        lat.append((seen - t0) * 1000)
        if args.webhook_port:
            ok = cond.wait_for(lambda: nid in webhooks, timeout=10)
            assert ok, f"webhook for notification {nid} not received within 10 s (bad signatures: {bad_signatures})"
            hook_lat.append((webhooks[nid] - t0) * 1000)
    time.sleep(0.02)


def summary(xs):
    xs = sorted(xs)
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return f"p50_ms={pick(0.5):.1f} p90_ms={pick(0.9):.1f} p99_ms={pick(0.99):.1f} max_ms={xs[-1]:.1f}"


print(f"RESULT lookups={n} {summary(lat)}")
if args.webhook_port:
    print(f"RESULT_WEBHOOK lookups={n} {summary(hook_lat)} bad_signatures={bad_signatures}")
    print(f"{'lookup ->':<12} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, xs in (("SSE", lat), ("webhook", hook_lat)):
        xs = sorted(xs)
        pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
        print(f"{name:<12} {pick(0.5):>8.1f} {pick(0.9):>8.1f} {pick(0.99):>8.1f} {xs[-1]:>8.1f}")
