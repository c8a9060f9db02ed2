#!/usr/bin/env bash
# Read-path latency of the risk register on a seeded register, SQLite and PostgreSQL, in one run.
#
#   bench/api-latency.sh [RISKS]          (default 100000)
#
# Environment: BENCH_DURATION (wrk duration per route, default 10s), BENCH_CONNECTIONS (default 8),
# BENCH_PG_URL (an existing database used to create and drop the benchmark's own,
# default postgres://postgres@127.0.0.1:5432/test). Results: a Markdown table on stdout;
# PostgreSQL query plans in target/bench/plans-postgres.txt. Installs wrk if missing (Debian).
# Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

RISKS=${1:-100000}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-8}

BENCH_NAME=latency
# shellcheck source=bench/lib.sh
source bench/lib.sh
require wrk

# GET a JSON document with the benchmark token; print one field (a dotted path).
field() { # url path
  curl -fsS -H "Authorization: Bearer $TOKEN" "$1" | python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if key.isdigit() else value[key]
print(value)' "$2"
}

measure() { # backend label path
  local out
  # A timeout well above the slowest route's p99 (wrk's default, 2 s, is not).
  out=$(wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" --timeout 30s -s bench/wrk-summary.lua \
    -H "Authorization: Bearer $TOKEN" "$BASE$3")
  python3 - "$1" "$2" "$out" <<'PY'
import json, sys
backend, label, out = sys.argv[1:4]
r = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
# wrk counts answers of status 400 and above as errors; socket errors are requests left unanswered.
if r["socket_errors"]:
    print(f"{backend}, {label}: {r['socket_errors']} socket errors", file=sys.stderr)
print(f"| {backend} | {label} | {r['requests_per_second']:.0f} | {r['p50_ms']:.2f} | "
      f"{r['p99_ms']:.2f} | {r['requests'] - r['status_errors']}/{r['requests']} |")
PY
}

run_backend() { # name database-url port
  local name=$1 port=$3
  export DATABASE_URL=$2 OPENRISK_DATA_DIR=$WORK/$name RUST_LOG=warn
  "$BIN" migrate 2>/dev/null
  TOKEN=$("$BIN" org create bench 2>/dev/null)
  local started=$SECONDS
  "$BIN" seed --org bench --risks "$RISKS" 2>/dev/null
  echo "$name: seeded $RISKS risks in $((SECONDS - started)) s" >&2
  start_server "$port"

  local id cursor page
  id=$(field "$BASE/api/v1/risks?limit=1" items.0.id)
  # A deep page: the cursor after half the register, walked in pages of 200.
  cursor=$(python3 - "$BASE" "$TOKEN" "$RISKS" <<'PY'
import json, sys, urllib.request
base, token, risks = sys.argv[1], sys.argv[2], int(sys.argv[3])
cursor, seen = None, 0
while seen < risks // 2:
    url = f"{base}/api/v1/risks?limit=200" + (f"&cursor={cursor}" if cursor else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    seen += len(page["items"])
    cursor = page["next_cursor"]
    if cursor is None:
        break
print(cursor or "")
PY
)
  measure "$name" "get by id" "/api/v1/risks/$id"
  measure "$name" "default list page (50)" "/api/v1/risks"
  measure "$name" "filtered + sorted page" "/api/v1/risks?status=open&status=in_progress&severity=critical&sort=-created_at"
  measure "$name" "q search (rare: ~10 hits)" "/api/v1/risks?q=ctl-4711"
  measure "$name" "q search (common: ~8% hits)" "/api/v1/risks?q=billing%20service"
  measure "$name" "deep page via cursor" "/api/v1/risks?cursor=$cursor"
  measure "$name" "dashboard stats" "/api/v1/dashboard/stats"
  measure "$name" "dashboard matrix" "/api/v1/dashboard/matrix"
  measure "$name" "dashboard timeline (30 days)" "/api/v1/dashboard/timeline"
  measure "$name" "dashboard timeline (365 days)" "/api/v1/dashboard/timeline?days=365"
  measure "$name" "dashboard top risks" "/api/v1/dashboard/top-risks"
  measure "$name" "summary (json)" "/api/v1/reports/summary"
  measure "$name" "summary (html)" "/api/v1/reports/summary?format=html"
  stop_server
  # Exports, each on a freshly started server so its peak RSS (VmHWM) is the export's own.
  for export in "csv ctl-00" "csv" "xlsx ctl-00" "xlsx"; do
    set -- $export
    start_server "$port"
    local query="format=$1${2:+&q=$2}" rows
    rows=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/reports/risk-register?format=json${2:+&q=$2}" \
      | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    stop_server
    start_server "$port"
    local before seconds after
    before=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
    seconds=$(curl -fsS -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" \
      "$BASE/api/v1/reports/risk-register?$query")
    after=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
    EXPORTS+=("| $name | $1 | $rows | $seconds | $((before / 1024)) | $((after / 1024)) |")
    stop_server
  done
}

EXPORTS=()
echo "| backend | route | req/s | p50 ms | p99 ms | ok/total |"
echo "|---|---|---|---|---|---|"
run_backend sqlite "sqlite://$WORK/sqlite/openrisk.db" 18181

PG_URL=$(create_pg_database)
run_backend postgres "$PG_URL" 18182

echo
echo "| backend | export | risks | seconds | RSS before (MiB) | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${EXPORTS[@]}"

# The plans behind the list and the search, as the store issues them (org bound as a parameter).
psql "$PG_URL" -q > "$OUT/plans-postgres.txt" <<'SQL'
SELECT id AS org FROM organizations WHERE slug = 'bench' \gset
\echo '== default list page: ORDER BY score DESC, id DESC'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT r.id, r.score FROM risks r
 WHERE r.org_id = :'org' ORDER BY r.score DESC, r.id DESC LIMIT 51;
\echo '== filtered + sorted: status, severity, ORDER BY created_at DESC'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT r.id FROM risks r
 WHERE r.org_id = :'org' AND r.status IN ('open', 'in_progress') AND r.severity IN ('critical')
 ORDER BY r.created_at DESC, r.id DESC LIMIT 51;
\echo '== q search, rare term: trigram GIN index'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT r.id FROM risks r
 WHERE r.org_id = :'org' AND r.search_text ILIKE '%ctl-4711%' ESCAPE '\'
 ORDER BY r.score DESC, r.id DESC LIMIT 51;
\echo '== q search, common term: the ordered scan stops after 51 matches'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT r.id FROM risks r
 WHERE r.org_id = :'org' AND r.search_text ILIKE '%billing service%' ESCAPE '\'
 ORDER BY r.score DESC, r.id DESC LIMIT 51;
\echo '== dashboard stats: risks per status and severity'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT status, severity, count(*), COALESCE(SUM(score), 0),
 count(*) FILTER (WHERE review_date < current_date) FROM risks WHERE org_id = :'org' GROUP BY status, severity;
\echo '== dashboard stats: mitigations per status'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT status, count(*), count(*) FILTER (WHERE due_date < current_date)
 FROM mitigations WHERE org_id = :'org' GROUP BY status;
\echo '== dashboard matrix'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT likelihood, impact, count(*) FROM risks
 WHERE org_id = :'org' AND status IN ('open', 'in_progress') GROUP BY likelihood, impact;
\echo '== dashboard timeline (365 days): daily change in open risks from the history'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT (h.changed_at AT TIME ZONE 'UTC')::date AS day,
 SUM(CASE WHEN h.status IN ('open', 'in_progress') THEN 1 ELSE 0 END
   - CASE WHEN p.status IN ('open', 'in_progress') THEN 1 ELSE 0 END)
 FROM risk_history h LEFT JOIN risk_history p ON p.risk_id = h.risk_id AND p.version = h.version - 1
 WHERE h.org_id = :'org' AND h.changed_at >= current_date - 364 GROUP BY 1;
\echo '== dashboard top risks: ranked in the covering index'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM risks WHERE org_id = :'org' AND status IN ('open', 'in_progress')
 ORDER BY score DESC, residual_score DESC NULLS LAST, id LIMIT 10;
\echo '== deep page: keyset continuation'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT r.id FROM risks r
 WHERE r.org_id = :'org' AND (r.score, r.id) < (9, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
 ORDER BY r.score DESC, r.id DESC LIMIT 51;
SQL
echo "PostgreSQL plans: $OUT/plans-postgres.txt" >&2
