#!/usr/bin/env bash
# A flame graph of L1 hits of one route, served in process by benches/hit_path.rs under perf:
#
#   bench/flamegraph.sh [ROUTE]      (default /api/v1/risks)
#
# Writes target/bench/hit-path-flamegraph.svg (docs/hit-path-flamegraph.svg is one). Installs
# perf (Debian's linux-perf) and inferno (from crates.io, into target/tools) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUTE=${1:-/api/v1/risks}
OUT=target/bench
TOOLS=$PWD/target/tools
mkdir -p "$OUT"
# shellcheck source=scripts/require.sh
source scripts/require.sh
require perf:linux-perf
[ -x "$TOOLS/bin/inferno-flamegraph" ] || cargo install inferno --locked --quiet --root "$TOOLS"

BIN=$(cargo bench --bench hit_path --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("target", {}).get("name") == "hit_path" and message.get("executable"):
        print(message["executable"])')
# The first seconds start the service and seed it: left out.
HIT_PATH_ONLY=$ROUTE perf record --quiet -F 999 --call-graph dwarf,16384 --delay 1500 \
  -o "$OUT/hit-path.perf" "$BIN" --bench
perf script -i "$OUT/hit-path.perf" 2>/dev/null | "$TOOLS/bin/inferno-collapse-perf" |
  "$TOOLS/bin/inferno-flamegraph" --title "L1 hit of GET $ROUTE, in process" --width 1600 --minwidth 0.3 \
  >"$OUT/hit-path-flamegraph.svg"
echo "$OUT/hit-path-flamegraph.svg"
