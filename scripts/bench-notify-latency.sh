#!/usr/bin/env bash
# Lookup -> notification latency (SPEC 6: p99 <= 1 s; issue #16 target 7: webhook p99 <= 100 ms on
# a quiet server): a release cpis server with the demo data; optional background lookup load from
# wrk; a probe makes notifying lookups one at a time and times each until its notification arrives
# on the LA's server-sent-events stream and until the LA's webhook receiver (run by the probe on
# 127.0.0.1, registered with `cpis webhooks add`, signature checked) gets the same notification.
# Prints RESULT (SSE) and RESULT_WEBHOOK lines and a table of both side by side.
#
# Usage: scripts/bench-notify-latency.sh [probe lookups] [background wrk connections, 0 = none]
# CPIS_BENCH_BIN names a prebuilt cpis binary (default: cargo build --release, target/release/cpis).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
n=${1:-200}
load=${2:-0}
bin=$(bench_binary)
tmp=$(mktemp -d)
port=${CPIS_BENCH_PORT:-18095}
hookport=$((port + 1))
{
  cat <<'TOML'
# The probe's webhook receiver listens on http://127.0.0.1.
[webhook_destinations]
allow_http_loopback = true

TOML
  anomaly_limits_off
} > "$tmp/cpis.toml"
"$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$tmp/bench.db" \
  serve --demo --bind "127.0.0.1:$port" 2> "$tmp/server.log" &
server=$!
bg=""
trap 'kill $server $bg 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
wait_ready "$port" "$tmp/server.log"
if [ "$load" -gt 0 ]; then
  cat > "$tmp/load.lua" <<'LUA'
request = function()
  return wrk.format("GET", "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990597634",
    { ["Authorization"] = "Bearer demo-RDEMO02", ["IsUnscheduledAccessEvent"] = "true" })
end
LUA
  wrk -t1 -c"$load" -d600s -s "$tmp/load.lua" "http://127.0.0.1:$port" > /dev/null 2>&1 &
  bg=$!
  sleep 2
fi
# A Coventry-only child from the demo upload (the probe watches Coventry's stream).
child=$(sed -n 2p demo/uploads/E08000026.csv | cut -d, -f2 | tr -d ' ')
# Coventry's webhook, to the probe's receiver (the server's delivery worker sends to it).
secret=$("$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$tmp/bench.db" \
  webhooks add E08000026 "http://127.0.0.1:$hookport/hook" | sed -n 's/^signing secret (shown once): //p')
[[ -n $secret ]] || { echo "webhooks add printed no secret" >&2; exit 1; }
echo "probe lookups=$n background_connections=$load"
python3 scripts/notify_latency_probe.py "http://127.0.0.1:$port" demo-E08000026 demo-RDEMO01 "$child" "$n" \
  --webhook-port "$hookport" --webhook-secret "$secret"
