#!/usr/bin/env bash
# Durable lookup benchmark (SPEC 6): a release cpis server with the demo data, driven by wrk on
# the same machine. Every request is a notifying CareTeam lookup by an emergency department
# clinician: read + access record + audit entry + one notification per LA, committed before the
# answer. Prints one line per concurrency, then one /healthz run at 32 connections (the same
# server's ceiling for a request that touches no database; CPIS_BENCH_HEALTHZ="8 32 64" for
# others) and the ratio lookups/healthz at that concurrency.
#
# Each lookup line also gives bytes_per_lookup: the servers' write_bytes (/proc/PID/io: bytes the
# process caused to be written to storage, WAL appends and checkpoint copies alike) during the wrk
# run divided by the lookups wrk completed, and rss_mb, the servers' resident memory after the run.
# On PostgreSQL the database server does the writing, so bytes_per_lookup there is only cpis's own.
#
# Usage: scripts/bench-lookups.sh [seconds per run] [concurrency ...]
#
# Backend: SQLite (a fresh file, WAL, synchronous=FULL) by default. With CPIS_BENCH_DATABASE set
# to a PostgreSQL URL whose user may create databases, e.g.
#   CPIS_BENCH_DATABASE=postgres://postgres@127.0.0.1:5432/postgres scripts/bench-lookups.sh
# the server runs on a fresh database (cpis_bench_…) created on that server (psql needed) and
# dropped at the end; the database the URL names is not written.
# CPIS_BENCH_SERVERS=N (PostgreSQL only, default 1): N cpis servers share the database, each
#   driven by its own wrk with concurrency/N connections at the same time; the line's rps is their
#   sum, its latencies the worst of the N.
# CPIS_BENCH_BIN names a prebuilt cpis binary (default: cargo build --release, target/release/cpis);
# CPIS_BENCH_PORT the first port (default 18090).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
secs=${1:-10}
shift || true
conc=("$@")
[ ${#conc[@]} -gt 0 ] || conc=(1 8 32 64 128)
require_wrk
bin=$(bench_binary)
tmp=$(mktemp -d)
port=${CPIS_BENCH_PORT:-18090}
admin=${CPIS_BENCH_DATABASE:-}
nservers=${CPIS_BENCH_SERVERS:-1}
pgdb=
servers=()
cleanup() {
  for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done
  for s in "${servers[@]}"; do wait "$s" 2>/dev/null || true; done
  if [[ -n $pgdb ]]; then
    psql -q "$admin" -c "DROP DATABASE IF EXISTS \"$pgdb\" WITH (FORCE)" >/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ -n $admin ]]; then
  command -v psql >/dev/null || { echo "psql is needed for CPIS_BENCH_DATABASE" >&2; exit 1; }
  pgdb=cpis_bench_$$_$(date +%s)
  # The same server URL naming the new database (any ?query is kept).
  base=${admin%%\?*}
  query=${admin#"$base"}
  if [[ $base =~ ^(postgres(ql)?://[^/]*)(/.*)?$ ]]; then
    url="${BASH_REMATCH[1]}/$pgdb$query"
  else
    echo "CPIS_BENCH_DATABASE must be a postgres:// URL" >&2
    exit 1
  fi
  # UTF-8 in the C locale, as docs/DEPLOYMENT.md asks of a production database.
  psql -q "$admin" -c "CREATE DATABASE \"$pgdb\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'" >/dev/null
  backend="postgres ($pgdb)"
else
  (( nservers == 1 )) || { echo "CPIS_BENCH_SERVERS needs PostgreSQL (CPIS_BENCH_DATABASE)" >&2; exit 1; }
  url="sqlite://$tmp/bench.db"
  backend="sqlite"
fi
anomaly_limits_off > "$tmp/cpis.toml"
# The first server loads the demo data and identities; the others share them.
for n in $(seq 0 $((nservers - 1))); do
  demo=()
  (( n == 0 )) && demo=(--demo)
  "$bin" --config "$tmp/cpis.toml" --log warn --database "$url" \
    serve "${demo[@]}" --bind "127.0.0.1:$((port + n))" 2> "$tmp/server$n.log" &
  servers+=($!)
  ready=
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$((port + n))/readyz" >/dev/null && { ready=1; break; }
    sleep 0.2
  done
  [[ -n $ready ]] || { echo "server $n did not start:" >&2; cat "$tmp/server$n.log" >&2; exit 1; }
done

{
  demo_lookup_requests
  cat <<'LUA'
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

# A wrk script that only prints the RESULT line (for /healthz).
sed -n '/^done = function/,$p' "$tmp/lookup.lua" > "$tmp/plain.lua"

# Sum over the servers of write_bytes (/proc/PID/io) and of RSS (kB).
written() {
  local total=0 s
  for s in "${servers[@]}"; do
    total=$(( total + $(sed -n 's/^write_bytes: //p' "/proc/$s/io") ))
  done
  echo "$total"
}
rss_kb() {
  local total=0 s
  for s in "${servers[@]}"; do total=$(( total + $(ps -o rss= -p "$s" | tr -d ' ') )); done
  echo "$total"
}

echo "backend=$backend servers=$nservers children=$(echo "$nhs" | wc -l) tokens=$(echo "$tokens" | wc -l) seconds=$secs"
declare -A lookup_rps
for c in "${conc[@]}"; do
  before=$(written)
  per=$(( c / nservers ))
  (( per >= 1 )) || per=1
  threads=$(( per < 2 || nservers > 1 ? 1 : 2 ))
  loads=()
  for n in $(seq 0 $((nservers - 1))); do
    wrk -t"$threads" -c"$per" -d"${secs}s" -s "$tmp/lookup.lua" "http://127.0.0.1:$((port + n))" \
      > "$tmp/wrk$n.out" 2>&1 &
    loads+=($!)
  done
  wait "${loads[@]}"
  bytes=$(( $(written) - before ))
  if (( nservers == 1 )); then
    line="concurrency=$c $(grep '^RESULT' "$tmp/wrk0.out" | sed 's/^RESULT //')"
  else
    line=$(cat "$tmp"/wrk*.out | grep '^RESULT' | awk -v c="$c" '
      { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        req += v["requests"]; rps += v["rps"]; non += v["non2xx"]; sock += v["socket_errors"]
        if (v["p50_ms"] > p50) p50 = v["p50_ms"]; if (v["p90_ms"] > p90) p90 = v["p90_ms"]
        if (v["p99_ms"] > p99) p99 = v["p99_ms"]; if (v["max_ms"] > mx) mx = v["max_ms"]; secs = v["seconds"] }
      END { printf "concurrency=%s requests=%d seconds=%s rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
            c, req, secs, rps, p50, p90, p99, mx, non, sock }')
  fi
  requests=$(echo "$line" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
  lookup_rps[$c]=$(echo "$line" | sed -n 's/.* rps=\([0-9]*\).*/\1/p')
  per=$(awk -v b="$bytes" -v r="${requests:-0}" 'BEGIN { printf "%.0f", (r > 0 ? b / r : 0) }')
  echo "$line bytes_per_lookup=$per rss_mb=$(( $(rss_kb) / 1024 ))"
done
for n in $(seq 0 $((nservers - 1))); do
  rss=$(ps -o rss= -p "${servers[$n]}" | tr -d ' ')
  echo "server${n}_rss_mb=$((rss / 1024))"
done

# The same server(s) answering /healthz (no database work): the ceiling of HTTP handling on this
# machine, against which the lookup rate at the same concurrency is compared. At 32 connections by
# default; CPIS_BENCH_HEALTHZ="8 32 64" names other concurrencies.
for c in ${CPIS_BENCH_HEALTHZ:-32}; do
  loads=()
  per=$(( c / nservers ))
  (( per >= 1 )) || per=1
  rm -f "$tmp"/health*.out
  for n in $(seq 0 $((nservers - 1))); do
    wrk -t"$(( per < 2 || nservers > 1 ? 1 : 2 ))" -c"$per" -d"${secs}s" -s "$tmp/plain.lua" \
      "http://127.0.0.1:$((port + n))/healthz" > "$tmp/health$n.out" 2>&1 &
    loads+=($!)
  done
  wait "${loads[@]}"
  health=$(cat "$tmp"/health*.out | grep '^RESULT' | awk '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }; rps += v["rps"]; non += v["non2xx"]
      if (v["p99_ms"] > p99) p99 = v["p99_ms"] }
    END { printf "%.0f p99_ms=%.2f non2xx=%d", rps, p99, non }')
  echo "healthz concurrency=$c rps=$health"
  if [[ -n ${lookup_rps[$c]:-} ]]; then
    awk -v c="$c" -v l="${lookup_rps[$c]}" -v h="${health%% *}" \
      'BEGIN { printf "ratio_lookups_to_healthz_at_%s=%.2f\n", c, (h > 0 ? l / h : 0) }'
  fi
done
