#!/usr/bin/env bash
# How long `openrisk backup` and `openrisk restore` take for one organization of RISKS risks, on
# SQLite and on PostgreSQL: RUNS of each (median, min and max), with the backup's size.
#
#   bench/backup.sh [RISKS] [RUNS]     (defaults: 100000, 3)
#
# Environment: BENCH_PG_URL (see bench/lib.sh). PostgreSQL needs pg_dump and pg_restore.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-100000}
RUNS=${2:-3}

BENCH_NAME=backup
# shellcheck source=bench/lib.sh
source bench/lib.sh
require pg_dump:postgresql-client pg_restore:postgresql-client

export OPENRISK_DATA_DIR=$WORK/data RUST_LOG=warn
mkdir -p "$OPENRISK_DATA_DIR"

# Seconds an openrisk command takes (it must succeed).
timed() {
  local start end
  start=$EPOCHREALTIME
  "$BIN" "$@" 2>/dev/null
  end=$EPOCHREALTIME
  python3 -c "print(f'{$end - $start:.2f}')"
}

summary() { # seconds…
  python3 - "$@" <<'PY'
import statistics, sys
times = sorted(float(t) for t in sys.argv[1:])
print(f"{statistics.median(times):.2f} s (min {times[0]:.2f}, max {times[-1]:.2f})")
PY
}

echo "| backend | risks | backup file | backup, median of $RUNS | restore, median of $RUNS |"
echo "|---|---|---|---|---|"
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then
    DATABASE_URL=sqlite://$WORK/register.db
  else
    DATABASE_URL=$(create_pg_database)
  fi
  export DATABASE_URL
  "$BIN" org create bench >/dev/null 2>&1
  "$BIN" seed --org bench --risks "$RISKS" >/dev/null 2>&1
  backups=() restores=()
  for run in $(seq 1 "$RUNS"); do
    backups+=("$(timed backup "$WORK/backup-$backend-$run")")
    if [ "$backend" = sqlite ]; then
      target=sqlite://$WORK/restored-$run.db
    else
      psql "$PG_ADMIN" -qc "CREATE DATABASE ${PG_DB}_r$run" >/dev/null
      target=${DATABASE_URL%/*}/${PG_DB}_r$run
    fi
    restores+=("$(DATABASE_URL=$target timed restore "$WORK/backup-$backend-$run")")
    if [ "$backend" = postgres ]; then
      psql "$PG_ADMIN" -qc "DROP DATABASE ${PG_DB}_r$run WITH (FORCE)" >/dev/null
    fi
  done
  size=$(du -h "$WORK/backup-$backend-1" | cut -f1)
  echo "| $backend | $RISKS | $size | $(summary "${backups[@]}") | $(summary "${restores[@]}") |"
done
