# shellcheck shell=bash
# Sourced by the scripts that run the service (the benches, the load test, the API and summary
# checks): starting "$BIN" serve in the background, waiting until it is ready, stopping it. The
# readiness rule is the same everywhere (deploy/live_check.py calls service_wait_ready too):
# GET URL/health/ready answers 200 within the time-out, else the run fails, showing the end of the
# service's log.
#
#   service_start NAME PORT LOGDIR [VAR=value …]
#       Starts "$BIN" serve on 127.0.0.1:PORT with the caller's environment plus the given
#       settings, its output appended to LOGDIR/NAME.log, and returns at once: SERVICE_PID is the
#       server's pid, SERVICE_URL its base URL.
#   service_wait_ready URL [TIMEOUT_SECONDS]
#       Returns once URL/health/ready answers 200; fails after the time-out (default 60 s: a debug
#       build starting on a busy machine), or at once if the service started there has exited.
#   service_stop PID …
#       Stops those processes, the last started first (a client before the servers it loads).
#   service_stop_all
#       Stops every service still running, for the caller's EXIT trap.

SERVICE_READY_TIMEOUT=60
SERVICE_RUNNING=() # pids, in the order started
declare -gA SERVICE_PID_OF SERVICE_LOG_OF # by URL

service_start() { # name port log-directory [VAR=value …]
  local port=$2 log=$3/$1.log
  shift 3
  mkdir -p "${log%/*}"
  # The settings given come last: they win over OPENRISK_LISTEN and the caller's environment.
  env OPENRISK_LISTEN="127.0.0.1:$port" "$@" "$BIN" serve >>"$log" 2>&1 &
  SERVICE_PID=$!
  SERVICE_URL=http://127.0.0.1:$port
  SERVICE_RUNNING+=("$SERVICE_PID")
  SERVICE_PID_OF[$SERVICE_URL]=$SERVICE_PID
  SERVICE_LOG_OF[$SERVICE_URL]=$log
}

service_wait_ready() { # url [timeout-seconds]
  local url=$1 timeout=${2:-$SERVICE_READY_TIMEOUT}
  local pid=${SERVICE_PID_OF[$1]:-} log=${SERVICE_LOG_OF[$1]:-} deadline=$((SECONDS + timeout)) problem
  until curl -fs -o /dev/null --max-time 2 "$url/health/ready"; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      problem="exited before it was ready"
    elif [ "$SECONDS" -ge "$deadline" ]; then
      problem="was not ready within $timeout s"
    else
      sleep 0.1
      continue
    fi
    echo "service: $url $problem" >&2
    if [ -n "$log" ]; then
      echo "service: the end of $log:" >&2
      tail -n 20 "$log" >&2
    fi
    return 1
  done
}

service_stop() { # pid…
  local i pid p kept
  for ((i = $#; i > 0; i--)); do
    pid=${!i}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    kept=()
    for p in "${SERVICE_RUNNING[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    SERVICE_RUNNING=("${kept[@]}")
  done
}

service_stop_all() {
  service_stop "${SERVICE_RUNNING[@]}"
}
