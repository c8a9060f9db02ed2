#!/usr/bin/env bash
# What request metrics cost a cache hit: the risk list served from L1 by two servers on copies of
# one database, one with METRICS_REQUESTS on and one with it off, both up throughout and loaded in
# turn (on, off, off, on, …), so that drift of the machine hits both alike. Each round reads the
# requests/s and p50 from wrk and the server's CPU time (user + system, /proc) per request, which
# the other tenants of a shared machine disturb far less than throughput. Prints each round, the
# medians, and the ratios within each pair with their medians.
#
#   bench/metrics-cost.sh [ROUNDS]          (default 20, an even number)
#
# Environment: BENCH_DURATION (per round, default 3s), BENCH_CONNECTIONS (default 32). SQLite, no
# Redis: an L1 hit touches neither. Installs wrk if missing (Debian). Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-20}
DURATION=${BENCH_DURATION:-3s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
PORT=18211

BENCH_NAME=metrics-cost
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk

mkdir -p "$WORK/on" "$WORK/off"
export DATABASE_URL=sqlite://$WORK/on/openrisk.db OPENRISK_DATA_DIR=$WORK/on RUST_LOG=warn
"$BIN" migrate 2>/dev/null
TOKEN=$("$BIN" org create bench 2>/dev/null)
"$BIN" seed --org bench --risks 1000 --seed 1 2>/dev/null
cp "$WORK"/on/openrisk.db* "$WORK/off/"
# A small answer: the fixed cost of a request weighs most there.
ROUTE=/api/v1/dashboard/stats

# Both servers, each warmed up: the second request is the L1 hit.
declare -A URL PID
for state in on off; do
  port=$([ $state = on ] && echo $PORT || echo $((PORT + 1)))
  start_server "$port" DATABASE_URL=sqlite://$WORK/$state/openrisk.db \
    OPENRISK_DATA_DIR=$WORK/$state METRICS_REQUESTS=$([ $state = on ] && echo true || echo false)
  PID[$state]=$SERVER
  taskset -a -cp 0 "$SERVER" >/dev/null
  URL[$state]=$BASE
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE$ROUTE"
  curl -fsS -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "$BASE$ROUTE" | grep -qi '^x-cache: hit' ||
    { echo "the warm-up request was not a hit" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

round() { # on|off
  local out before after
  before=$(cpu_ticks "${PID[$1]}")
  out=$(taskset -c 1 wrk -t 1 -c "$CONNECTIONS" -d "$DURATION" --latency -H "Authorization: Bearer $TOKEN" "${URL[$1]}$ROUTE")
  after=$(cpu_ticks "${PID[$1]}")
  python3 - "$1" "$out" $((after - before)) "$(getconf CLK_TCK)" <<'PY'
import re, sys
metrics, out, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
p50 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
assert not re.search(r"Non-2xx or 3xx responses", out), "errors during the round"
print(f"{metrics} {rps:.0f} {p50:.3f} {1e6 * ticks / hz / requests:.2f}")
PY
}

RESULTS=()
for pair in $(seq 1 $((ROUNDS / 2))); do
  if [ $((pair % 2)) -eq 1 ]; then states="on off"; else states="off on"; fi
  for state in $states; do
    RESULTS+=("$(round "$state")")
    echo "round: ${RESULTS[-1]}" >&2
  done
done
printf '%s\n' "${RESULTS[@]}" | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
def median(state, column):
    return statistics.median(float(r[column]) for r in rows if r[0] == state)
# Each pair ran back to back: its ratio is spared the drift between pairs.
pairs = [{r[0]: r for r in rows[i:i + 2]} for i in range(0, len(rows) - 1, 2)]
def ratios(column):
    return sorted(float(p["on"][column]) / float(p["off"][column]) for p in pairs)
print("| METRICS_REQUESTS | rounds | median req/s | median p50 ms | median server CPU µs/request |")
print("|---|---|---|---|---|")
for state in ("off", "on"):
    print(f"| {state} | {sum(r[0] == state for r in rows)} | {median(state, 1):.0f} | {median(state, 2):.3f} | {median(state, 3):.2f} |")
for name, column in (("throughput", 1), ("server CPU per request", 3)):
    values = ratios(column)
    listed = ", ".join(f"{100 * v:.1f}" for v in values)
    print(f"\n{name}, on/off per pair (%): {listed}; median {100 * statistics.median(values):.1f} %")
'
