#!/usr/bin/env bash
# The hit ratio when Redis runs out of memory, for each eviction policy, SQLite and PostgreSQL, in
# one run. Two replicas share a Redis of the run's own: on one, nine organizations send the mixed
# traffic of bench/cache.sh (95 % reads, 5 % writes); on the other, a tenth organization floods the
# cache with distinct large register pages. The first replica runs without L1
# (CACHE_L1_MAX_BYTES=0), so its hit ratio is what Redis still holds for it.
#
#   bench/cache-pressure.sh [RISKS]          (default 20000, spread over 10 organizations)
#
# Environment: BENCH_DURATION (per configuration, default 15s), BENCH_CONNECTIONS (per replica,
# default 8), BENCH_PG_URL. Installs wrk and redis-server if missing (Debian packages). Targets
# 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-20000}
ORGS=10
DURATION=${BENCH_DURATION:-15s}
CONNECTIONS=${BENCH_CONNECTIONS:-8}

BENCH_NAME=cache_pressure
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk redis-server redis-cli:redis-tools

REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  --daemonize yes --pidfile "$WORK/redis.pid" >/dev/null
REDIS=redis://127.0.0.1:$REDIS_PORT
trap 'service_stop_all; redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; cleanup' EXIT
redis() { redis-cli -p "$REDIS_PORT" "$@" >/dev/null; }

# memory-limit policy
CONFIGURATIONS=("0 noeviction" "8mb allkeys-lru" "8mb allkeys-lfu" "8mb allkeys-random" "8mb volatile-lru"
  "8mb noeviction")

run_backend() { # name database-url port
  local name=$1 port=$3 tokens=() flood_token org token risk operator
  export DATABASE_URL=$2 OPENRISK_DATA_DIR=$WORK/$name RUST_LOG=warn
  "$BIN" migrate 2>/dev/null
  for org in $(seq 1 $ORGS); do
    token=$("$BIN" org create "org$org" 2>/dev/null)
    "$BIN" seed --org "org$org" --risks $((RISKS / ORGS)) --seed "$org" 2>/dev/null
    if [ "$org" = "$ORGS" ]; then flood_token=$token; continue; fi
    tokens+=("$token")
  done
  # The cache's report counts for every organization: a system token reads it.
  operator=$("$BIN" token create --org org1 --role admin --system --name operator 2>/dev/null)
  echo "$name: seeded $RISKS risks in $ORGS organizations" >&2

  local configuration limit policy mixed
  for configuration in "${CONFIGURATIONS[@]}"; do
    read -r limit policy <<<"$configuration"
    redis FLUSHALL
    redis CONFIG SET maxmemory "$limit"
    redis CONFIG SET maxmemory-policy "$policy"
    redis CONFIG RESETSTAT
    service_start "$BENCH_NAME-server" $((port + 1)) "$OUT" REDIS_URL="$REDIS"
    local flood_server=$SERVICE_PID flood_url=$SERVICE_URL
    start_server "$port" REDIS_URL="$REDIS" CACHE_L1_MAX_BYTES=0
    service_wait_ready "$flood_url"
    local pairs=()
    for token in "${tokens[@]}"; do
      risk=$(curl -fsS -H "Authorization: Bearer $token" "$BASE/api/v1/risks?limit=1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')
      pairs+=("$token:$risk")
    done
    BENCH_FLOOD_TOKEN=$flood_token wrk -t 1 -c "$CONNECTIONS" -d "$DURATION" -s bench/cache-flood.lua \
      "$flood_url" >"$WORK/flood.out" &
    local flood=$!
    mixed=$(BENCH_TOKENS=$(IFS=,; echo "${pairs[*]}") wrk -t 1 -c "$CONNECTIONS" -d "$DURATION" \
      -s bench/cache-mixed.lua "$BASE")
    wait $flood
    local memory
    memory=$(redis-cli -p "$REDIS_PORT" INFO | tr -d '\r' | awk -F: '
      $1 == "used_memory" { used = $2 } $1 == "evicted_keys" { evicted = $2 }
      END { printf "%.1f MiB|%d", used / 1048576, evicted }')
    curl -fsS -H "Authorization: Bearer $operator" "$BASE/api/v1/admin/cache" | python3 -c '
import json, re, sys
name, limit, policy, memory, mixed, flood = sys.argv[1:7]
rate = lambda out: re.search(r"Requests/sec:\s+([\d.]+)", out).group(1).split(".")[0]
used, evicted = memory.split("|")
ratios = []
for n in json.load(sys.stdin)["namespaces"]:
    if n["namespace"] in ("risks", "dashboard", "reports"):
        lookups = n["l1"]["hits"] + n["l1"]["misses"]
        served = n["l1"]["hits"] + n["l2"]["hits"]
        ratios.append(f"{100 * served / max(lookups, 1):.1f} %")
limit = "none" if limit == "0" else limit
print(f"| {name} | {limit} | {policy} | {used} | {evicted} | {rate(mixed)} | {rate(flood)} | " + " | ".join(ratios) + " |")
' "$name" "$limit" "$policy" "$memory" "$mixed" "$(cat "$WORK/flood.out")"
    service_stop "$flood_server"
    stop_server
  done
}

echo "| backend | maxmemory | policy | Redis used | keys evicted | mixed req/s | flood req/s | risks served from cache | dashboard | reports |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run_backend sqlite "sqlite://$WORK/sqlite/openrisk.db" 18301
PG_URL=$(create_pg_database)
run_backend postgres "$PG_URL" 18303
