# Shared by the scripts/bench-*.sh benchmarks: sourced from the repository root, not run.

# Fails unless wrk (the HTTP load generator) is installed.
require_wrk() {
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
}

# Prints the cpis binary to benchmark: CPIS_BENCH_BIN when set, else a release build of this
# checkout (built first).
bench_binary() {
  if [[ -n ${CPIS_BENCH_BIN:-} ]]; then
    echo "$CPIS_BENCH_BIN"
  else
    cargo build --release -q -p cpis-cli >&2
    echo ./target/release/cpis
  fi
}

# Prints the config section that turns lookup anomaly limits off: a benchmark is one identity per
# connection making lookups as fast as it can, which the limits would rightly throttle. The miss
# rule is off by its ratio (no share of misses is over 1.0), not by a huge window, so the detector
# still keeps only its default 40 lookups per identity, as it does in service.
anomaly_limits_off() {
  cat <<'TOML'
[anomaly]
max_per_minute = 1000000000
max_distinct_children = 1000000000
org_max_lookups = 1000000000
sequential_run = 1000000000
sequential_gap = 0
miss_window = 40
max_miss_ratio = 1.0
throttle_minutes = 1
TOML
}

# wait_ready PORT LOG: waits up to 2 minutes (seeded databases open slowly) for the server on PORT
# to answer /readyz; otherwise prints the server's LOG and fails.
wait_ready() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the server on port $1 did not start:" >&2
  cat "$2" >&2
  exit 1
}

# Prints the wrk Lua that makes every request a notifying CareTeam lookup of a demo child with a
# plan (from the demo uploads), by an emergency-department, urgent-treatment, ambulance or
# maternity clinician's demo token, taken in turn. Scripts append their own `response`/`done`.
# Leaves the children and tokens in `nhs` and `tokens` (call it in the script's own shell).
demo_lookup_requests() {
  nhs=$(tail -q -n +2 demo/uploads/E*.csv | cut -d, -f2 | tr -d ' ' | sort -u)
  tokens=$(cut -d, -f1,3 demo/care_settings.csv | grep -E ',(emergency-department|urgent-treatment-centre|ambulance|maternity)$' | cut -d, -f1)
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
LUA
}
