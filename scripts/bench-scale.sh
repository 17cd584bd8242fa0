#!/usr/bin/env bash
# Lookups at scale (issue #16 target 6: serve 1M records with RSS <= 200 MB): seeds a fresh SQLite
# file with RECORDS synthetic children (`cpis bench seed`: the synthetic LA E99999999, demographics,
# one full upload through the engine), starts a release server on it with the demo data and
# identities (anomaly limits off, as scripts/bench-lookups.sh), and drives it with wrk: notifying
# CareTeam lookups by emergency-department clinicians of children picked from the seeded ones.
#
# Prints one line: records, seed seconds, database size, lookup rps, p50/p90/p99/max, non-2xx
# answers and lookups that found no plan (should be 0), and the server's memory from
# /proc/PID/status: VmRSS when idle after start, VmRSS after the run and VmHWM (peak RSS).
#
# Usage: scripts/bench-scale.sh [records] [seconds] [connections]
#   defaults: 1000000 records, 30 s, 8 connections.
# CPIS_BENCH_BIN names a prebuilt cpis binary (default: cargo build --release, target/release/cpis);
# CPIS_BENCH_PORT the port (default 18100).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
records=${1:-1000000}
secs=${2:-30}
conns=${3:-8}
require_wrk
bin=$(bench_binary)
tmp=$(mktemp -d)
port=${CPIS_BENCH_PORT:-18100}
server=
cleanup() {
  if [[ -n $server ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
anomaly_limits_off > "$tmp/cpis.toml"
db="$tmp/scale.db"

# Seed first (the synthetic LA must be in the directory before the demo identities are made).
start=$(date +%s.%N)
"$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$db" \
  bench seed --records "$records" --nhs-list "$tmp/nhs.txt" > "$tmp/seed.out"
seed_secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

"$bin" --config "$tmp/cpis.toml" --log warn --database "sqlite://$db" \
  serve --demo --bind "127.0.0.1:$port" 2> "$tmp/server.log" &
server=$!
wait_ready "$port" "$tmp/server.log"
db_mb=$(du -sm "$db" "$db-wal" 2>/dev/null | awk '{ s += $1 } END { print s }')
status_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$server/status"; }
idle_rss=$(status_kb VmRSS)

# Up to 10,000 seeded children spread over the whole range (wrk holds the list in memory).
step=$(( records > 10000 ? records / 10000 : 1 ))
tokens=$(cut -d, -f1,3 demo/care_settings.csv | grep -E ',(emergency-department|urgent-treatment-centre|ambulance|maternity)$' | cut -d, -f1)
{
  echo "local nhs = {"; awk -v s="$step" '(NR - 1) % s == 0 { print "\"" $1 "\"," }' "$tmp/nhs.txt"; echo "}"
  echo "local tokens = {"; for t in $tokens; do echo "\"demo-$t\","; done; echo "}"
  cat <<'LUA'
local i = 0
request = function()
  i = i + 1
  local n = nhs[(i * 7919 % #nhs) + 1]
  local t = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C" .. n,
    { ["Authorization"] = "Bearer " .. t, ["IsUnscheduledAccessEvent"] = "true" })
end
-- A 200 answer that does not name the synthetic LA found no plan: counted as a miss.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
misses = 0
response = function(status, headers, body)
  if status == 200 and not string.find(body, "E99999999", 1, true) then misses = misses + 1 end
end
done = function(summary, latency, requests)
  local m = 0
  for _, t in ipairs(threads) do m = m + t:get("misses") end
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d misses=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status, m, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
} > "$tmp/lookup.lua"

threads=$(( conns < 2 ? 1 : 2 ))
wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$tmp/lookup.lua" "http://127.0.0.1:$port" > "$tmp/wrk.out" 2>&1
result=$(grep '^RESULT' "$tmp/wrk.out" | sed 's/^RESULT //') || { cat "$tmp/wrk.out" >&2; exit 1; }
echo "records=$(sed -n 's/^seeded \([0-9]*\) records.*/\1/p' "$tmp/seed.out") seed_seconds=$seed_secs db_mb=$db_mb" \
  "connections=$conns seconds=$secs $result" \
  "idle_vmrss_mb=$(( idle_rss / 1024 )) vmrss_mb=$(( $(status_kb VmRSS) / 1024 )) vmhwm_mb=$(( $(status_kb VmHWM) / 1024 ))"
