#!/usr/bin/env bash
# The PostgreSQL ceiling for cpis lookups: pgbench running the SQL transaction of one notifying
# lookup (scripts/pgbench-lookup.sql) on a fresh database loaded with the demo data, at each
# concurrency. Compare with scripts/bench-lookups.sh on PostgreSQL (BENCHMARKS.md).
#
# Usage: scripts/bench-pg-ceiling.sh [seconds per run] [concurrency ...]
#
# CPIS_BENCH_DATABASE: a PostgreSQL URL whose user may create databases
#   [default: postgres://postgres@127.0.0.1:5432/postgres]. A fresh database cpis_bench_… is
#   created on that server, loaded with `cpis demo load`, and dropped at the end.
# CPIS_BENCH_BIN: a prebuilt cpis binary (default: cargo build --release, target/release/cpis).
# CPIS_BENCH_COMPARE=1: also run scripts/bench-lookups.sh on PostgreSQL with the same
#   concurrencies and print cpis lookups/s ÷ pgbench tps for each.
# CPIS_BENCH_GROUP=G (default 1): G lookups per transaction, the shape of cpis's group commit
#   (its writer thread commits every lookup waiting, up to 512, in one transaction). The script is
#   generated from pgbench-lookup.sql; lookups/s = tps × G. Each grouped lookup re-reads and
#   rewrites the (already locked) audit head, which cpis does once per transaction.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-common.sh
secs=${1:-10}
shift || true
conc=("$@")
[ ${#conc[@]} -gt 0 ] || conc=(1 8 32 64)
for tool in pgbench psql; do
  command -v $tool >/dev/null || { echo "$tool is needed (apt-get install -y postgresql-client)" >&2; exit 1; }
done
admin=${CPIS_BENCH_DATABASE:-postgres://postgres@127.0.0.1:5432/postgres}
bin=$(bench_binary)

pgdb=cpis_bench_$$_$(date +%s)
base=${admin%%\?*}
query=${admin#"$base"}
[[ $base =~ ^(postgres(ql)?://[^/]*)(/.*)?$ ]] || { echo "CPIS_BENCH_DATABASE must be a postgres:// URL" >&2; exit 1; }
url="${BASH_REMATCH[1]}/$pgdb$query"
cleanup() {
  psql -q "$admin" -c "DROP DATABASE IF EXISTS \"$pgdb\" WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
# UTF-8 in the C locale, as docs/DEPLOYMENT.md asks of a production database.
psql -q "$admin" -c "CREATE DATABASE \"$pgdb\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'" >/dev/null
"$bin" --log warn --database "$url" demo load >/dev/null
psql -q "$url" <<'SQL'
CREATE TABLE bench_children AS
  SELECT row_number() OVER (ORDER BY nhs_number) AS i, nhs_number, la_ods
  FROM (SELECT nhs_number, min(la_ods) AS la_ods FROM records GROUP BY nhs_number) c;
CREATE UNIQUE INDEX ON bench_children (i);
ANALYZE;
SQL
children=$(psql -qtA "$url" -c "SELECT count(*) FROM bench_children")
echo "backend=postgres ($pgdb) children=$children seconds=$secs server=$(psql -qtA "$admin" -c 'SHOW server_version') synchronous_commit=$(psql -qtA "$admin" -c 'SHOW synchronous_commit') fsync=$(psql -qtA "$admin" -c 'SHOW fsync')"

group=${CPIS_BENCH_GROUP:-1}
script=scripts/pgbench-lookup.sql
if (( group > 1 )); then
  # G copies of the lookup in one transaction, each with its own variables (name_K).
  script=$(mktemp --suffix=.sql)
  trap 'cleanup; rm -f "$script"' EXIT
  vars='i|nhs|la|head_seq|head_hash|new_seq|new_hash|note_id'
  prelude=$(grep -v '^--' scripts/pgbench-lookup.sql | sed -n '1,/^BEGIN;/p' | grep -v '^BEGIN;')
  body=$(sed -n '/^BEGIN;/,/^COMMIT;/p' scripts/pgbench-lookup.sql | grep -v '^BEGIN;\|^COMMIT;')
  {
    for k in $(seq 1 "$group"); do
      echo "$prelude" | sed -E "s/(:| AS )($vars)\b/\1\2_$k/g; s/^\\\\set i /\\\\set i_$k /"
    done
    echo "BEGIN;"
    for k in $(seq 1 "$group"); do
      echo "$body" | sed -E "s/(:| AS )($vars)\b/\1\2_$k/g"
    done
    echo "COMMIT;"
  } > "$script"
fi
echo "lookups_per_transaction=$group"

declare -A tps
for c in "${conc[@]}"; do
  threads=$(( c < 2 ? 1 : 2 ))
  out=$(pgbench -n -M prepared -f "$script" -D children="$children" \
    -c "$c" -j "$threads" -T "$secs" "$url" 2>&1) || { echo "$out" >&2; exit 1; }
  t=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -n1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p')
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  tps[$c]=$(awk -v t="$t" -v g="$group" 'BEGIN { printf "%.1f", t * g }')
  echo "concurrency=$c pgbench_tps=$t lookups_per_s=${tps[$c]} latency_avg_ms=$lat failed=${failed:-0}"
done

if [[ ${CPIS_BENCH_COMPARE:-} == 1 ]]; then
  echo "== cpis lookups on PostgreSQL (scripts/bench-lookups.sh)"
  lookups=$(CPIS_BENCH_BIN=$bin CPIS_BENCH_DATABASE=$admin scripts/bench-lookups.sh "$secs" "${conc[@]}")
  echo "$lookups"
  for c in "${conc[@]}"; do
    rps=$(echo "$lookups" | sed -n "s/^concurrency=$c .*rps=\([0-9.]*\).*/\1/p")
    awk -v c="$c" -v r="$rps" -v t="${tps[$c]}" 'BEGIN { printf "concurrency=%s cpis_rps=%s pgbench_lookups_per_s=%s ratio=%.2f\n", c, r, t, (t > 0 ? r / t : 0) }'
  done
fi
