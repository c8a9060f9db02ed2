#!/usr/bin/env bash
# Renders the executive summary (HTML) of a seeded register in headless Chromium, to PNG and to
# PDF, and fails if Chromium reports an error or produces nothing.
#
#   scripts/render-summary.sh [OUT_DIR]        (default target/summary-render)
#
# Installs Debian's chromium when it is missing. Serves on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/service.sh
source scripts/service.sh

OUT=${1:-target/summary-render}
mkdir -p "$OUT"
if ! command -v chromium >/dev/null; then
  apt-get install -y --no-install-recommends chromium >/dev/null
fi
cargo build --quiet
BIN=$PWD/target/debug/openrisk
WORK=$(mktemp -d)
cleanup() { service_stop_all; rm -rf "$WORK"; }
trap cleanup EXIT

export OPENRISK_DATA_DIR=$WORK RUST_LOG=warn
export OPENRISK_BOOTSTRAP_TOKEN=render-summary-token-0123456789
unset DATABASE_URL
"$BIN" migrate 2>/dev/null
: >"$OUT/server.log" # this run's log only
service_start server 18390 "$OUT"
service_wait_ready "$SERVICE_URL"
"$BIN" seed --org default --risks 500 2>/dev/null
curl -fsS -H "Authorization: Bearer $OPENRISK_BOOTSTRAP_TOKEN" \
  "$SERVICE_URL/api/v1/reports/summary?format=html" -o "$OUT/summary.html"

chrome() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/chrome" "$@" "file://$PWD/$OUT/summary.html" 2>>"$OUT/chromium.log"
}
: > "$OUT/chromium.log"
chrome --window-size=1100,2200 --screenshot="$OUT/summary.png"
chrome --no-pdf-header-footer --print-to-pdf="$OUT/summary.pdf"

for file in summary.png summary.pdf; do
  [ -s "$OUT/$file" ] || { echo "render-summary: $file was not produced" >&2; exit 1; }
done
# Chromium logs noise about its own sandbox and D-Bus; a page error shows as a console message.
if grep -E "Uncaught|ERR_|CONSOLE" "$OUT/chromium.log"; then
  echo "render-summary: the page logged errors" >&2
  exit 1
fi
pages=$(grep -c "/Type /Page\b" "$OUT/summary.pdf" || true)
echo "render-summary: $OUT/summary.png, $OUT/summary.pdf ($pages pages)"
