#!/usr/bin/env bash
# Checks the served OpenAPI document against the service on a fresh PostgreSQL database with Redis:
#  1. Schemathesis, every check and every phase (examples, coverage, fuzzing, stateful), once as a
#     system admin and once as a viewer; any finding fails the run;
#  2. the README walkthrough through a Python client generated from the served document
#     (openapi-python-client): create, list, filter, update with If-Match, history, mitigations,
#     dashboard, export;
#  3. the reference page /api/docs in headless Chromium, with every host but 127.0.0.1 unreachable
#     (nothing may come from a CDN): it must list exactly the document's operations.
#
#   api/check.sh [--bin PATH] [--seconds N]     (defaults: target/release/openrisk, 60 per role)
#
# Environment: FUZZ_PG_URL (an existing database used to create and drop the run's own, default
# postgres://postgres@127.0.0.1:5432/test), FUZZ_REDIS_URL (default redis://127.0.0.1:6379/12,
# flushed first). Installs Schemathesis and openapi-python-client (PyPI, pinned with hashes) into
# venvs under target/api/, and Chromium (Debian) if missing. Reports (JUnit XML) go to target/api/. Targets 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
source scripts/require.sh
# shellcheck source=scripts/service.sh
source scripts/service.sh
require chromium

BIN=target/release/openrisk
SECONDS_PER_ROLE=60
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --seconds) SECONDS_PER_ROLE=$2; shift 2 ;;
    *) echo "usage: api/check.sh [--bin PATH] [--seconds N]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || cargo build --release --quiet --bin openrisk

PG_ADMIN=${FUZZ_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${FUZZ_REDIS_URL:-redis://127.0.0.1:6379/12}
OUT=target/api
mkdir -p "$OUT"
FUZZER=$OUT/schemathesis
GENERATOR=$OUT/client-generator
pinned_venv "$FUZZER" api/requirements-schemathesis.txt st
pinned_venv "$GENERATOR" api/requirements-client.txt openapi-python-client

WORK=$(mktemp -d)
DB=openrisk_fuzz_$$
cleanup() {
  service_stop_all
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
redis-cli -u "$REDIS" FLUSHDB >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADMIN=ort_fuzz-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export DATABASE_URL=${PG_ADMIN%/*}/$DB OPENRISK_DATA_DIR=$WORK \
  REDIS_URL=$REDIS OPENRISK_BOOTSTRAP_TOKEN=$ADMIN RUST_LOG=warn \
  RATE_LIMIT_PER_SECOND=0 RATE_LIMIT_EXPENSIVE_PER_MINUTE=0 RATE_LIMIT_EXPENSIVE_CONCURRENCY=0 \
  RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN=0 RATE_LIMIT_FAILED_AUTH_PER_MINUTE=0
: >"$OUT/server.log" # this run's log only
service_start server "$PORT" "$OUT"
BASE=$SERVICE_URL
service_wait_ready "$BASE"

# Some data to find, and a viewer of the same organization.
"$BIN" seed --org default --risks 50 --seed 1 2>/dev/null
api() { curl -fsS -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "$@"; }
viewer_id=$(api "$BASE/api/v1/users" -d '{"email": "viewer@fuzz.example", "name": "Viewer", "role": "viewer"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
VIEWER=$(api "$BASE/api/v1/tokens" -d "{\"user_id\": \"$viewer_id\", \"name\": \"fuzz\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

status=0
echo "== The README walkthrough through a generated client"
curl -fsS "$BASE/api/openapi.json" >"$OUT/openapi.json"
rm -rf "$OUT/client"
# Warnings mean parts of the document the generator had to skip.
if PATH="$GENERATOR/bin:$PATH" openapi-python-client generate --path "$OUT/openapi.json" --meta none \
    --output-path "$OUT/client/openrisk_client" 2>&1 | tee "$OUT/client-generation.log" | grep -qi warning; then
  cat "$OUT/client-generation.log" >&2
  status=1
fi
PYTHONPATH=$OUT/client "$GENERATOR/bin/python" api/walkthrough.py "$BASE" "$ADMIN" || status=1

for role in admin viewer; do
  token=$ADMIN; [ $role = viewer ] && token=$VIEWER
  echo "== Schemathesis as $role, $SECONDS_PER_ROLE s"
  # Every check is on by default; naming them on the command line (`--checks all`) would also
  # override the one the configuration switches off for one operation.
  "$FUZZER/bin/st" --config-file api/schemathesis.toml run "$BASE/api/openapi.json" \
    -H "Authorization: Bearer $token" --max-time "$SECONDS_PER_ROLE" \
    --report junit --report-junit-path "$OUT/fuzz-$role.xml" --no-color || status=1
done

echo "== /api/docs in headless Chromium"
chromium --headless --no-sandbox --disable-gpu --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
  --virtual-time-budget=20000 --dump-dom "$BASE/api/docs/" 2>/dev/null >"$OUT/docs-page.html"
curl -fsS "$BASE/api/openapi.json" | python3 -c '
import html, json, re, sys
document = json.load(sys.stdin)
expected = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
page = open(sys.argv[1], encoding="utf-8").read()
# Each operation: <div class="opblock opblock-get …"> … data-path="/api/v1/risks" …
shown = {(m.upper(), html.unescape(p)) for m, p in
         re.findall(r"class=\"opblock opblock-(\w+)[^\"]*\".*?data-path=\"([^\"]+)\"", page, re.S)}
if shown != expected:
    sys.exit(f"/api/docs lists {len(shown)} operations, the document {len(expected)}: "
             f"missing {sorted(expected - shown)[:5]}, unexpected {sorted(shown - expected)[:5]}")
print(f"/api/docs lists all {len(expected)} operations of the document")
' "$OUT/docs-page.html" || status=1
exit $status
