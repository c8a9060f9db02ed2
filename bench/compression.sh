#!/usr/bin/env bash
# What compression does for the risk list (a page of 50 risks): bytes on the wire per coding, and
# the throughput of L1 hits asking for each coding, in one run (PostgreSQL + Redis).
#
#   bench/compression.sh [RISKS]     (default 2000: a page is a page whatever the register's size)
#
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (default 32), BENCH_PG_URL,
# BENCH_REDIS_URL (default redis://127.0.0.1:6379/15; flushed). Installs wrk if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-2000}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}
ROUTE=/api/v1/risks

BENCH_NAME=compression
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk

export DATABASE_URL OPENRISK_DATA_DIR=$WORK/data RUST_LOG=warn
DATABASE_URL=$(create_pg_database)
"$BIN" migrate 2>/dev/null
TOKEN=$("$BIN" org create bench 2>/dev/null)
"$BIN" seed --org bench --risks "$RISKS" >/dev/null 2>&1
redis-cli -u "$REDIS" FLUSHDB >/dev/null
start_server 18304 REDIS_URL="$REDIS"

echo "| Accept-Encoding | Content-Encoding | bytes on the wire | L1 hit req/s | p50 ms | wire MB/s |"
echo "|---|---|---|---|---|---|"
for accept in "" "gzip" "zstd" "br" "gzip, deflate, br, zstd"; do
  fetch() { curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" ${accept:+-H "Accept-Encoding: $accept"} "$@" "$BASE$ROUTE"; }
  fetch; fetch
  read -r size coding < <(fetch -w '%{size_download} %header{content-encoding}\n')
  out=$(wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
    ${accept:+-H "Accept-Encoding: $accept"} "$BASE$ROUTE")
  python3 - "${accept:-(none)}" "${coding:-identity}" "$size" "$out" <<'PY'
import re, sys
accept, coding, size, out = sys.argv[1:5]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
ms = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
print(f"| {accept} | {coding} | {int(size):,} | {rps:.0f} | {ms:.2f} | {rps * int(size) / 1e6:.1f} |")
PY
done
stop_server
