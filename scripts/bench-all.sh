#!/usr/bin/env bash
# Every performance target of issue #16 in one run, each against its threshold: runs the other
# benchmarks one after another on this machine (never two at once), keeps their full output in a
# directory, and ends with one table: target, what was measured, the threshold, met or not.
#
#   1. bytes written per durable lookup (SQLite)      scripts/bench-lookups.sh 10 8 32 64
#   2. lookups / same server's /healthz at 32, p99 at 8   (the same run)
#   3. lookup p99 while a 500k-row full upload runs   scripts/bench-upload-contention.sh
#   4. 500k full reload and 5k daily file (SQLite)    cpis bench upload
#   5. PostgreSQL lookups at 32, reload and daily     (with CPIS_BENCH_DATABASE)
#   6. RSS serving 1M records, and the lookup rate    scripts/bench-scale.sh (CPIS_BENCH_SCALE=1)
#   7. lookup -> webhook p99 on a quiet server        scripts/bench-notify-latency.sh 200 0
#
# Usage: scripts/bench-all.sh [output directory]   (default: a new directory under /tmp)
# CPIS_BENCH_BIN names a prebuilt cpis binary (default: cargo build --release, target/release/cpis).
# CPIS_BENCH_DATABASE=postgres://user@host/db adds the PostgreSQL targets (4 and 5): the user must
#   be allowed to create databases; each benchmark makes its own and drops it.
# CPIS_BENCH_SCALE=1 adds target 6 (1M records seeded in about 20 s, then 30 s of lookups).
# About 2 minutes on the project's 2-core machine with neither, 3.5 with both; figures vary by
# ±10-30% from run to run there (BENCHMARKS.md): compare builds by alternating runs, not by one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
require_wrk
bin=$(bench_binary)
export CPIS_BENCH_BIN=$bin
out=${1:-$(mktemp -d /tmp/cpis-bench-all.XXXXXX)}
mkdir -p "$out"
pg=${CPIS_BENCH_DATABASE:-}

# field NAME FILE LINE: the value of NAME=value on the first line of FILE matching the pattern LINE
# (empty when there is none).
field() {
  { grep -E "$3" "$2" || true; } | head -1 | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}
# seconds SCENARIO FILE: the seconds column of a `cpis bench upload` scenario line.
seconds() {
  { grep "^$1" "$2" || true; } | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) { print $i; exit } }'
}
# verdict VALUE OP LIMIT: "yes" when VALUE OP LIMIT holds (OP is <= or >=), "no" otherwise, "?"
# when nothing was measured.
verdict() {
  [[ -n $1 ]] || { echo "?"; return; }
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "<=") ? v <= l : v >= l; print ok ? "yes" : "no" }'
}
rows=()
row() { rows+=("$(printf '%-46s %-22s %-12s %s' "$1" "$2" "$3" "$4")"); }

step() { echo "== $1 ($(date -u +%H:%M:%S) UTC)" >&2; }
# run FILE COMMAND...: runs a benchmark into FILE; a failure is reported (its targets then show
# "?") and the others still run.
run() {
  local file=$1
  shift
  "$@" > "$file" 2>&1 || echo "   failed (exit $?): see $file" >&2
}

step "SQLite upload: cpis bench upload"
run "$out/upload-sqlite.txt" "$bin" --log warn bench upload
reload=$(seconds "full reload" "$out/upload-sqlite.txt")
daily=$(seconds "daily delta" "$out/upload-sqlite.txt")
daily_ms=$(awk -v s="$daily" 'BEGIN { printf "%.0f", s * 1000 }')

step "SQLite lookups: scripts/bench-lookups.sh 10 8 32 64"
run "$out/lookups-sqlite.txt" env CPIS_BENCH_DATABASE= CPIS_BENCH_HEALTHZ=32 \
  scripts/bench-lookups.sh 10 8 32 64
bytes8=$(field bytes_per_lookup "$out/lookups-sqlite.txt" '^concurrency=8 ')
bytes32=$(field bytes_per_lookup "$out/lookups-sqlite.txt" '^concurrency=32 ')
rps32=$(field rps "$out/lookups-sqlite.txt" '^concurrency=32 ')
p99_8=$(field p99_ms "$out/lookups-sqlite.txt" '^concurrency=8 ')
healthz=$(field rps "$out/lookups-sqlite.txt" '^healthz concurrency=32 ')
ratio=$(field ratio_lookups_to_healthz_at_32 "$out/lookups-sqlite.txt" "^ratio_lookups_to_healthz_at_32=")

step "Lookups during a 500k-row full upload: scripts/bench-upload-contention.sh 500000 10 8"
run "$out/contention.txt" scripts/bench-upload-contention.sh 500000 10 8
during_p99=$(field p99_ms "$out/contention.txt" '^during upload:')

step "Lookup -> webhook on a quiet server: scripts/bench-notify-latency.sh 200 0"
run "$out/notify.txt" scripts/bench-notify-latency.sh 200 0
webhook_p99=$(field p99_ms "$out/notify.txt" '^RESULT_WEBHOOK')
sse_p99=$(field p99_ms "$out/notify.txt" '^RESULT ')

row "target" "measured" "threshold" "met"
row "1 bytes per lookup, 8 / 32 connections" "$bytes8 / $bytes32" "<= 4096" \
  "$(verdict "$bytes8" "<=" 4096) / $(verdict "$bytes32" "<=" 4096)"
row "2 lookups / healthz at 32" "$rps32 / $healthz = $ratio" ">= 0.40" "$(verdict "$ratio" ">=" 0.40)"
row "2 lookup p99 at 8 connections (ms)" "$p99_8" "<= 10" "$(verdict "$p99_8" "<=" 10)"
row "3 lookup p99 during a 500k upload (ms)" "$during_p99" "<= 50" "$(verdict "$during_p99" "<=" 50)"
row "4 SQLite 500k full reload (s)" "$reload" "<= 5" "$(verdict "$reload" "<=" 5)"
row "4 SQLite 5k daily file (ms)" "$daily_ms" "<= 100" "$(verdict "$daily_ms" "<=" 100)"

if [[ -n $pg ]]; then
  step "PostgreSQL upload: cpis bench upload --database"
  run "$out/upload-postgres.txt" "$bin" --log warn bench upload --database "$pg"
  pg_reload=$(seconds "full reload" "$out/upload-postgres.txt")
  pg_daily=$(seconds "daily delta" "$out/upload-postgres.txt")
  pg_daily_ms=$(awk -v s="$pg_daily" 'BEGIN { printf "%.0f", s * 1000 }')
  step "PostgreSQL lookups: CPIS_BENCH_DATABASE=... scripts/bench-lookups.sh 10 32"
  run "$out/lookups-postgres.txt" env CPIS_BENCH_HEALTHZ=32 scripts/bench-lookups.sh 10 32
  pg_rps32=$(field rps "$out/lookups-postgres.txt" '^concurrency=32 ')
  row "4 PostgreSQL 500k full reload (s)" "$pg_reload" "<= 10" "$(verdict "$pg_reload" "<=" 10)"
  row "4 PostgreSQL 5k daily file (ms)" "$pg_daily_ms" "<= 150" "$(verdict "$pg_daily_ms" "<=" 150)"
  row "5 PostgreSQL lookups/s at 32" "$pg_rps32" ">= 4000" "$(verdict "$pg_rps32" ">=" 4000)"
else
  row "4, 5 PostgreSQL" "not run" "" "(set CPIS_BENCH_DATABASE)"
fi

if [[ ${CPIS_BENCH_SCALE:-} == 1 ]]; then
  step "1M records: scripts/bench-scale.sh 1000000 30 8"
  run "$out/scale.txt" scripts/bench-scale.sh 1000000 30 8
  hwm=$(field vmhwm_mb "$out/scale.txt" '^records=')
  scale_rps=$(field rps "$out/scale.txt" '^records=')
  row "6 peak RSS serving 1M records (MB)" "$hwm (${scale_rps} lookups/s)" "<= 200" "$(verdict "$hwm" "<=" 200)"
else
  row "6 RSS at 1M records" "not run" "" "(set CPIS_BENCH_SCALE=1)"
fi
row "7 lookup -> webhook p99, quiet (ms)" "$webhook_p99 (SSE $sse_p99)" "<= 100" "$(verdict "$webhook_p99" "<=" 100)"

echo "issue #16 targets, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "binary: $bin; every benchmark's output: $out"
printf '%s\n' "${rows[@]}"
