#!/usr/bin/env bash
# Durable lookup benchmark (SPEC 6): a release cpis server with the demo data on SQLite, driven by
# wrk on the same machine. Every request is a notifying CareTeam lookup by an emergency
# department clinician: read + access record + audit entry + one notification per LA, committed
# (synchronous=FULL) before the answer. Prints one line per concurrency.
#
# Usage: scripts/bench-lookups.sh [seconds per run] [concurrency ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
conc=("$@")
[ ${#conc[@]} -gt 0 ] || conc=(1 8 32 64 128)
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -q -p cpis-cli
tmp=$(mktemp -d)
port=${CPIS_BENCH_PORT:-18090}
cat > "$tmp/cpis.toml" <<TOML
# The benchmark is one identity per connection hammering lookups: anomaly limits off.
[anomaly]
max_per_minute = 1000000000
sequential_run = 1000000000
sequential_gap = 0
miss_window = 1000000000
max_miss_ratio = 1.0
throttle_minutes = 1
TOML
./target/release/cpis --config "$tmp/cpis.toml" --log warn --database "sqlite://$tmp/bench.db" \
  serve --demo --bind "127.0.0.1:$port" 2> "$tmp/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

# Children with plans, from the demo uploads (ten digits, spaces removed).
nhs=$(tail -q -n +2 demo/uploads/E*.csv | cut -d, -f2 | tr -d ' ' | sort -u)
tokens=$(cut -d, -f1,3 demo/care_settings.csv | grep -E ',(emergency-department|urgent-treatment-centre|ambulance|maternity)$' | cut -d, -f1)
{
  echo "local nhs = {"; for n in $nhs; do echo "\"$n\","; done; echo "}"
  echo "local tokens = {"; for t in $tokens; do echo "\"demo-$t\","; done; echo "}"
  cat <<'LUA'
local i = 0
request = function()
  i = i + 1
  local n = nhs[(i % #nhs) + 1]
  local t = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C" .. n,
    { ["Authorization"] = "Bearer " .. t, ["IsUnscheduledAccessEvent"] = "true" })
end
local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
} > "$tmp/lookup.lua"

echo "children=$(echo "$nhs" | wc -l) tokens=$(echo "$tokens" | wc -l) seconds=$secs"
for c in "${conc[@]}"; do
  threads=$(( c < 2 ? 1 : 2 ))
  out=$(wrk -t"$threads" -c"$c" -d"${secs}s" -s "$tmp/lookup.lua" "http://127.0.0.1:$port" 2>&1)
  echo "concurrency=$c $(echo "$out" | grep '^RESULT' | sed 's/^RESULT //')"
done
rss=$(ps -o rss= -p "$server" | tr -d ' ')
echo "server_rss_mb=$((rss / 1024))"
notifications=$(curl -s -H 'Authorization: Bearer demo-E08000026' "http://127.0.0.1:$port/api/v1/notifications?limit=1" >/dev/null; echo ok)
