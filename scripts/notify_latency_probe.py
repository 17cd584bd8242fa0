#!/usr/bin/env python3
"""Lookup -> notification latency probe for cpis (standard library only).

Opens the LA's server-sent-events stream, then makes N notifying lookups one after another and
measures, for each, the time from sending the lookup to the LA receiving its notification on the
stream. Prints p50/p90/p99/max in milliseconds.

Usage: notify_latency_probe.py BASE_URL LA_TOKEN CLINICIAN_TOKEN NHS_NUMBER [N]
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

base, la_token, clin_token, nhs = sys.argv[1:5]
n = int(sys.argv[5]) if len(sys.argv) > 5 else 200
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

arrivals = []
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
            if b"\ndata:" in b"\n" + event or event.startswith(b"data:"):
                with cond:
                    arrivals.append(time.perf_counter())
                    cond.notify_all()


threading.Thread(target=stream, daemon=True).start()
time.sleep(0.5)
lookup = http.client.HTTPConnection(host, port)
path = "/fhir/R4/CareTeam?patient:identifier=" + urllib.parse.quote(f"https://fhir.nhs.uk/Id/nhs-number|{nhs}", safe=":/")
lat = []
per_lookup = None
for i in range(n):
    with cond:
        before = len(arrivals)
    t0 = time.perf_counter()
    lookup.request("GET", path, headers={"Authorization": f"Bearer {clin_token}", "IsUnscheduledAccessEvent": "true"})
    r = lookup.getresponse()
    r.read()
    assert r.status == 200, r.status
    notified = int(r.getheader("cpis-notified-las", "0"))
    # Only this LA's stream is watched: one notification per lookup for it.
    with cond:
        ok = cond.wait_for(lambda: len(arrivals) > before, timeout=10)
        assert ok, "notification not seen within 10 s"
        lat.append((arrivals[before] - t0) * 1000)
    time.sleep(0.02)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"RESULT lookups={n} p50_ms={pick(0.5):.1f} p90_ms={pick(0.9):.1f} p99_ms={pick(0.99):.1f} max_ms={lat[-1]:.1f}")
