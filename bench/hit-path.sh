#!/usr/bin/env bash
# Cache hits against the bare route and against Varnish, and the uncached cost of each route, on
# one organization of a large register (PostgreSQL + Redis), in one run:
#
#   route | bare or L1 hit req/s | Varnish hit req/s | uncached req/s (p50 ms) | L1 / bare | L1 / Varnish
#
#   bench/hit-path.sh [RISKS]       (default 100000, in one organization)
#
# Varnish (Debian's `varnish`, configured by bench/varnish.vcl) sits in front of an uncached
# server and caches every GET by URL, checking no token. Environment: BENCH_DURATION (per
# measurement, default 10s), BENCH_CONNECTIONS (default 32), BENCH_PG_URL, BENCH_REDIS_URL (default
# redis://127.0.0.1:6379/15; flushed). Installs wrk and varnish if missing. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-100000}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}
# The uncached server's port is Varnish's backend in bench/varnish.vcl.
UNCACHED_PORT=18301
CACHED_PORT=18302
VARNISH_PORT=18303

BENCH_NAME=hitpath
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk varnishd:varnish

ROUTES=(
  "risk list:/api/v1/risks"
  "search:/api/v1/risks?q=billing%20service"
  "dashboard stats:/api/v1/dashboard/stats"
  "dashboard matrix:/api/v1/dashboard/matrix"
  "timeline, 365 days:/api/v1/dashboard/timeline?days=365"
  "executive summary:/api/v1/reports/summary"
)

# Requests/s and p50 (ms) of `wrk` on URL: "rps p50".
load() { # url
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$1"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$1"
  wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $TOKEN" "$1" | python3 -c '
import re, sys
out = sys.stdin.read()
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"{errors.group(1)} failed responses")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
ms = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
print(f"{rps:.0f} {ms:.2f}")'
}

export DATABASE_URL OPENRISK_DATA_DIR=$WORK/data RUST_LOG=warn
DATABASE_URL=$(create_pg_database)
"$BIN" migrate 2>/dev/null
TOKEN=$("$BIN" org create bench 2>/dev/null)
"$BIN" seed --org bench --risks "$RISKS" 2>/dev/null
echo "seeded $RISKS risks in one organization" >&2

declare -A UNCACHED L1 VARNISH
start_server "$UNCACHED_PORT" CACHE_ENABLED=false
UNCACHED_SERVER=$SERVER
for route in "${ROUTES[@]}"; do
  UNCACHED[${route%%:*}]=$(load "$BASE${route#*:}")
done

mkdir -m 755 "$WORK/varnish"
# Without gzip support Varnish stores and sends bodies as the backend gave them, like the service
# to a client that asks for no compression (wrk does not), instead of inflating each hit.
varnishd -F -a 127.0.0.1:$VARNISH_PORT -f "$PWD/bench/varnish.vcl" -n "$WORK/varnish" -s malloc,256m \
  -p http_gzip_support=off \
  >>"$OUT/$BENCH_NAME-varnish.log" 2>&1 &
VARNISH=$!
trap 'kill $VARNISH 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$VARNISH_PORT/health/live" && break; sleep 0.1; done
for route in "${ROUTES[@]}"; do
  VARNISH[${route%%:*}]=$(load "http://127.0.0.1:$VARNISH_PORT${route#*:}")
done
kill $VARNISH; wait $VARNISH 2>/dev/null || true
SERVER=$UNCACHED_SERVER
stop_server

redis-cli -u "$REDIS" FLUSHDB >/dev/null
start_server "$CACHED_PORT" REDIS_URL="$REDIS"
BARE=$(load "$BASE/health/live")
for route in "${ROUTES[@]}"; do
  L1[${route%%:*}]=$(load "$BASE${route#*:}")
done
stop_server

echo "$RISKS risks in one organization, PostgreSQL + Redis, wrk 2 threads x $CONNECTIONS connections, $DURATION each"
echo
echo "| route | bare or L1 hit req/s | Varnish hit req/s | uncached req/s (p50 ms) | L1 / bare | L1 / Varnish |"
echo "|---|---|---|---|---|---|"
echo "| \`/health/live\` (bare route) | ${BARE% *} | — | — | — | — |"
for route in "${ROUTES[@]}"; do
  name=${route%%:*}
  read -r l1 _ <<<"${L1[$name]}"
  read -r varnish _ <<<"${VARNISH[$name]}"
  read -r uncached p50 <<<"${UNCACHED[$name]}"
  python3 -c 'import sys; n, l1, v, u, p, bare = sys.argv[1:]; print(f"| {n} | {l1} | {v} | {u} ({p} ms) | {100 * int(l1) / int(bare):.0f} % | {100 * int(l1) / int(v):.0f} % |")' \
    "$name" "$l1" "$varnish" "$uncached" "$p50" "${BARE% *}"
done
