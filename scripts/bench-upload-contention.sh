#!/usr/bin/env bash
# Lookups during a large full upload (issue #16 target 3: lookup p99 <= 50 ms while a 500k-row full
# upload runs). Seeds a fresh SQLite file with ROWS synthetic children of the synthetic LA
# E99999999 (`cpis bench seed`, which also writes a full reload file for the same children with
# changed plans), starts a release server on it with the demo data and identities (anomaly limits
# off, as scripts/bench-lookups.sh), then:
#   1. quiet: wrk lookups (demo children, emergency-department tokens, as bench-lookups.sh) for
#      SECONDS, no upload;
#   2. contended: the reload sent as a full upload through the HTTP API (POST /api/v1/uploads with
#      the LA's token demo-E99999999) and, from its start until its answer, the same wrk lookups.
# Prints a line for each phase (lookup rps, p50/p90/p99/max, non-2xx) and the upload's HTTP status,
# file outcome, rows and seconds. It measures; it changes nothing in how the server works (on
# SQLite, lookups made while the upload holds the writer go to the lookup spool:
# docs/ARCHITECTURE.md, "No lookup waits behind an upload").
#
# Usage: scripts/bench-upload-contention.sh [rows] [quiet seconds] [connections]
#   defaults: 500000 rows, 10 s, 8 connections.
# CPIS_BENCH_BIN names a prebuilt cpis binary (default: cargo build --release, target/release/cpis);
# CPIS_BENCH_PORT the port (default 18105).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
rows=${1:-500000}
secs=${2:-10}
conns=${3:-8}
require_wrk
bin=$(bench_binary)
tmp=$(mktemp -d)
port=${CPIS_BENCH_PORT:-18105}
server=
load=
upload=
cleanup() {
  for p in $load $upload $server; do kill "$p" 2>/dev/null || true; done
  for p in $load $upload $server; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
{
  cat <<'TOML'
# Lookups: one identity per connection hammering them, so anomaly limits off. Upload: the whole
# reload file in one request, and no mass-ending confirmation step.
max_upload_bytes = 10000000000
mass_end_threshold = 1.0

TOML
  anomaly_limits_off
} > "$tmp/cpis.toml"
db="$tmp/contention.db"
"$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$db" \
  bench seed --records "$rows" --reload-csv "$tmp/reload.csv" > "$tmp/seed.out"
"$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$db" \
  serve --demo --bind "127.0.0.1:$port" 2> "$tmp/server.log" &
server=$!
wait_ready "$port" "$tmp/server.log"

{
  demo_lookup_requests
  cat <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
} > "$tmp/lookup.lua"
threads=$(( conns < 2 ? 1 : 2 ))
url="http://127.0.0.1:$port"
result() { grep '^RESULT' "$1" | sed 's/^RESULT //' || { cat "$1" >&2; exit 1; }; }

echo "rows=$rows connections=$conns reload_mb=$(( $(stat -c %s "$tmp/reload.csv") / 1048576 ))"
wrk --timeout 60s -t"$threads" -c"$conns" -d"${secs}s" -s "$tmp/lookup.lua" "$url" > "$tmp/quiet.out" 2>&1
echo "quiet: $(result "$tmp/quiet.out")"

# The full upload in the background; wrk from its start until its answer (SIGINT makes wrk stop
# and print its summary). wrk's -d is only a bound.
start=$(date +%s.%N)
curl -s -o "$tmp/upload.json" -w '%{http_code}' -X POST \
  "$url/api/v1/uploads?mode=full&file_id=bench-contention-$$&file_date=$(date -u +%F)" \
  -H 'Authorization: Bearer demo-E99999999' -H 'Content-Type: text/csv' \
  --data-binary "@$tmp/reload.csv" > "$tmp/upload.status" &
upload=$!
wrk --timeout 60s -t"$threads" -c"$conns" -d3600s -s "$tmp/lookup.lua" "$url" > "$tmp/contended.out" 2>&1 &
load=$!
wait "$upload" || true
upload=
end=$(date +%s.%N)
kill -INT "$load"
wait "$load" || true
load=
echo "during upload: $(result "$tmp/contended.out")"
outcome=$(python3 - "$tmp/upload.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print(f"file_outcome={r.get('file_outcome')} status={r.get('status')} rows={r.get('counts', {}).get('rows')}")
except ValueError:
    print("file_outcome=unreadable-answer")
PY
)
awk -v s="$start" -v e="$end" -v code="$(cat "$tmp/upload.status")" -v o="$outcome" \
  'BEGIN { printf "upload: http=%s %s seconds=%.2f\n", code, o, e - s }'
