# Shared by the benchmark scripts (source it after setting BENCH_NAME): a release build, a work
# directory and a PostgreSQL database of the run's own, both removed at exit, and starting and
# stopping the server. Environment: BENCH_PG_URL, an existing database used to create and drop the
# run's own (default postgres://postgres@127.0.0.1:5432/test); BENCH_BIN, a server binary to measure
# instead of this tree's release build.

# shellcheck source=scripts/require.sh
source scripts/require.sh
# shellcheck source=scripts/service.sh
source scripts/service.sh

PG_ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
# Rate limits on, as deployed, but never reached by one token's benchmark load.
export RATE_LIMIT_PER_SECOND=1000000000 RATE_LIMIT_BURST=1000000000 RATE_LIMIT_EXPENSIVE_PER_MINUTE=0 \
  RATE_LIMIT_EXPENSIVE_CONCURRENCY=0 RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN=0
OUT=target/bench
mkdir -p "$OUT"
# BENCH_BIN measures another build of the server (an earlier version, for before/after figures).
if [ -z "${BENCH_BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${BENCH_BIN:-$PWD/target/release/openrisk}
WORK=$(mktemp -d)
PG_DB=openrisk_${BENCH_NAME}_$$
SERVER=
cleanup() {
  service_stop_all
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Creates the run's PostgreSQL database and prints its URL.
create_pg_database() {
  psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
  python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' \
    "$PG_ADMIN" "$PG_DB"
}

# Starts the server on 127.0.0.1:PORT with the given VAR=value settings and waits until it is
# ready; SERVER is its pid, BASE its URL.
start_server() { # port [VAR=value …]
  local port=$1; shift
  service_start "$BENCH_NAME-server" "$port" "$OUT" "$@"
  SERVER=$SERVICE_PID BASE=$SERVICE_URL
  service_wait_ready "$BASE"
}

stop_server() {
  service_stop "$SERVER"; SERVER=
  # The next server starts once PostgreSQL has let go of this one's connections.
  if [[ ${DATABASE_URL:-} == postgres* ]]; then
    for _ in $(seq 1 100); do
      [ "$(psql "$PG_ADMIN" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$PG_DB'")" = 0 ] && break
      sleep 0.1
    done
  fi
}
