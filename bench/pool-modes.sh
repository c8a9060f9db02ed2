#!/usr/bin/env bash
# Throughput and latency of mixed read/write traffic (bench/mixed.lua: 80 % reads, 20 % writes)
# for each pool mode and a pool sized by the cores × 2 rule, at 16, 64 and 256 concurrent
# clients, on SQLite and PostgreSQL, in one run. Each measurement gets a freshly started server,
# so the pool figures read from /api/v1/admin/pool afterwards are that run's own.
#
#   bench/pool-modes.sh [RISKS]          (default 10000)
#
# Environment: BENCH_DURATION (per measurement, default 10s), BENCH_PG_URL (an existing database
# used to create and drop the benchmark's own, default postgres://postgres@127.0.0.1:5432/test).
# Installs wrk if missing (Debian). Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-10000}
DURATION=${BENCH_DURATION:-10s}
CORES=$(nproc)

BENCH_NAME=pool
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk

run_backend() { # name database-url port
  local name=$1 port=$3
  export DATABASE_URL=$2 OPENRISK_DATA_DIR=$WORK/$name RUST_LOG=warn
  "$BIN" migrate 2>/dev/null
  export BENCH_TOKEN
  BENCH_TOKEN=$("$BIN" org create bench 2>/dev/null)
  # The pool's report counts for every organization: a system token reads it.
  local operator
  operator=$("$BIN" token create --org bench --role admin --system --name operator 2>/dev/null)
  "$BIN" seed --org bench --risks "$RISKS" 2>/dev/null
  start_server "$port"
  export BENCH_IDS
  BENCH_IDS=$(curl -fsS -H "Authorization: Bearer $BENCH_TOKEN" "$BASE/api/v1/risks?limit=100" |
    python3 -c 'import json, sys; print(",".join(r["id"] for r in json.load(sys.stdin)["items"]))')
  stop_server
  local pool clients
  for pool in "default:DB_POOL_MODE=default" "high-throughput:DB_POOL_MODE=high-throughput" \
      "low-latency:DB_POOL_MODE=low-latency" \
      "cores×2 ($((CORES * 2))):DB_MAX_OPEN_CONNECTIONS=$((CORES * 2)) DB_MAX_IDLE_CONNECTIONS=$((CORES * 2))"; do
    for clients in 16 64 256; do
      # shellcheck disable=SC2086 # the settings are words on purpose
      start_server "$port" ${pool#*:}
      local result report
      result=$(wrk -t 2 -c "$clients" -d "$DURATION" --timeout 30s -s bench/mixed.lua "$BASE" | grep '^RESULT')
      report=$(curl -fsS -H "Authorization: Bearer $operator" "$BASE/api/v1/admin/pool")
      stop_server
      python3 - "$name" "${pool%%:*}" "$clients" "$result" "$report" <<'PY'
import json, sys
backend, pool, clients, result, report = sys.argv[1:6]
_, rps, p50, p99, non2xx, failed = result.split()
p = json.loads(report)["pool"]
wait = p["acquire_wait"]["p99_ms"]
print(f"| {backend} | {pool} | {clients} | {rps} | {p50} | {p99} | {int(non2xx) + int(failed)} | "
      f"{p['max_open']} | {p['connections_opened']} | {wait if wait is not None else '-'} | {p['acquire_timeouts']} |")
PY
    done
  done
}

echo "Mixed read/write (80/20), $RISKS risks, $DURATION per row, wrk -t 2, $CORES cores shared by client and server."
echo
echo "| backend | pool | clients | req/s | p50 ms | p99 ms | errors | max open | connections opened | acquire wait p99 ms | acquire time-outs |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
run_backend sqlite "sqlite://$WORK/sqlite/openrisk.db" 18191
PG_URL=$(create_pg_database)
echo "PostgreSQL max_connections: $(psql "$PG_URL" -Atc 'SHOW max_connections')" >&2
run_backend postgres "$PG_URL" 18192
