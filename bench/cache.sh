#!/usr/bin/env bash
# What the cache buys, on a seeded register, SQLite and PostgreSQL, in one run:
#  1. requests/s and p50/p99 of a bare route (the framework ceiling), then of the risk list, a
#     search, dashboard stats and the summary served from L1, from L2 (L1 off) and uncached;
#  2. the hit ratio per namespace under mixed traffic (95 % reads, 5 % writes, 10 organizations).
#
#   bench/cache.sh [RISKS]          (default 100000, spread over 10 organizations)
#
# Environment: BENCH_DURATION (per measurement, default 10s), BENCH_CONNECTIONS (default 16),
# BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test), BENCH_REDIS_URL (default
# redis://127.0.0.1:6379/15; the benchmark flushes that database). Installs wrk if missing (Debian).
# Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-100000}
ORGS=10
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}

BENCH_NAME=cache
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk

# Every server starts on an empty Redis database.
start_cache_server() { # port [VAR=value …]
  redis-cli -u "$REDIS" FLUSHDB >/dev/null
  start_server "$@"
}

measure() { # backend tier label path [token]
  local out
  # Two warm-up requests: the second one proves the entry is in place.
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE$4"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE$4"
  sleep 0.2
  out=$(wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$BASE$4")
  python3 - "$1" "$2" "$3" "$out" <<'PY'
import re, sys
backend, tier, label, out = sys.argv[1:5]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
def ms(p):
    m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"| {backend} | {label} | {tier} | {rps:.0f} | {ms(50):.2f} | {ms(99):.2f} | {errors.group(1) if errors else 0} |")
PY
}

run_backend() { # name database-url port
  local name=$1 port=$3 pairs=() org
  export DATABASE_URL=$2 OPENRISK_DATA_DIR=$WORK/$name RUST_LOG=warn
  "$BIN" migrate 2>/dev/null
  for org in $(seq 1 $ORGS); do
    local token
    token=$("$BIN" org create "org$org" 2>/dev/null)
    "$BIN" seed --org "org$org" --risks $((RISKS / ORGS)) --seed "$org" 2>/dev/null
    pairs+=("$token")
  done
  # The cache's report counts for every organization: a system token reads it.
  TOKEN=$("$BIN" token create --org org1 --role admin --system --name operator 2>/dev/null)
  echo "$name: seeded $RISKS risks in $ORGS organizations" >&2

  local tier settings route
  for tier in "L1 hit:REDIS_URL=$REDIS" "L2 hit (L1 off):REDIS_URL=$REDIS CACHE_L1_MAX_BYTES=0" \
      "uncached:CACHE_ENABLED=false"; do
    # shellcheck disable=SC2086 # the settings are words on purpose
    start_cache_server "$port" ${tier#*:}
    [ "${tier%%:*}" = "uncached" ] && measure "$name" "-" "bare route (/health/live)" "/health/live"
    for route in "risk list:/api/v1/risks" "search:/api/v1/risks?q=billing%20service" \
        "dashboard stats:/api/v1/dashboard/stats" "summary:/api/v1/reports/summary"; do
      measure "$name" "${tier%%:*}" "${route%%:*}" "${route#*:}"
    done
    stop_server
  done

  # Mixed traffic, then the hit ratio per namespace.
  start_cache_server "$port" REDIS_URL="$REDIS"
  local tokens=() token risk
  for token in "${pairs[@]}"; do
    risk=$(curl -fsS -H "Authorization: Bearer $token" "$BASE/api/v1/risks?limit=1" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
    tokens+=("$token:$risk")
  done
  local mixed
  mixed=$(BENCH_TOKENS=$(IFS=,; echo "${tokens[*]}") wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --latency \
    -s bench/cache-mixed.lua "$BASE")
  MIXED+=("$name: $(grep 'Requests/sec' <<<"$mixed" | tr -s ' ')")
  RATIOS+=("$(curl -fsS -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/admin/cache" | python3 -c '
import json, sys
backend = sys.argv[1]
targets = {"risks": "90 % (list), 75 % (search)", "dashboard": "85 %", "marketplace": "80 %", "reports": "70 %"}
for n in json.load(sys.stdin)["namespaces"]:
    if n["namespace"] not in targets:
        continue
    name, hits = n["namespace"], n["l1"]["hits"]
    total = hits + n["l1"]["misses"]
    print(f"| {backend} | {name} | {total} | {100 * hits / max(total, 1):.1f} % | {targets[name]} |")
' "$name")")
  stop_server
}

MIXED=()
RATIOS=()
echo "| backend | route | served from | req/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---|---|---|---|---|---|"
run_backend sqlite "sqlite://$WORK/sqlite/openrisk.db" 18201
PG_URL=$(create_pg_database)
run_backend postgres "$PG_URL" 18202

echo
echo "Mixed traffic (95 % reads, 5 % writes, $ORGS organizations, $CONNECTIONS connections, $DURATION):"
printf '%s\n' "${MIXED[@]}"
echo
echo "| backend | namespace | lookups | L1 hit ratio | target |"
echo "|---|---|---|---|---|"
printf '%s\n' "${RATIOS[@]}"
