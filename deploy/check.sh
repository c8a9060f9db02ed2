#!/usr/bin/env bash
# Checks everything in deploy/ (docs/operations.md, "How the monitoring is checked"):
#  1. promtool: the configuration, the rules, and the rules' unit tests; amtool: Alertmanager's;
#  2. the generated SLO rules and dashboards match deploy/build.py;
#  3. live: every rule and dashboard query returns data from a real Prometheus (live_check.py);
#  4. the Compose file, and the Kubernetes manifests against the Kubernetes schemas, offline.
#
#   deploy/check.sh [--bin PATH]      (default target/release/openrisk, built if missing)
#
# Installs Prometheus, Alertmanager and both exporters (Debian) and docker-compose (Debian) if missing, and
# kubernetes-validate (PyPI, pinned with hashes) into target/deploy/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
source scripts/require.sh

BIN=target/release/openrisk
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    *) echo "usage: deploy/check.sh [--bin PATH]" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || cargo build --release --quiet --bin openrisk

require promtool:prometheus amtool:prometheus-alertmanager prometheus-redis-exporter \
  prometheus-postgres-exporter docker-compose

echo "deploy: promtool"
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/tests/*.yml
amtool check-config deploy/alertmanager/alertmanager.yml

echo "deploy: generated files"
python3 deploy/build.py --check

echo "deploy: live rules and dashboards"
python3 deploy/live_check.py --bin "$BIN"

echo "deploy: Compose and Kubernetes"
# The secrets Compose requires, with stand-in values: only the file's shape is checked.
OPENRISK_BOOTSTRAP_TOKEN=stand-in-bootstrap-token OPENRISK_SECRETS_KEY=c3RhbmQtaW4ta2V5LW9mLTMyLWJ5dGVzLWZvci1jaGVjaw== \
  GRAFANA_ADMIN_PASSWORD=stand-in docker-compose -f deploy/docker-compose.yml config -q
pinned_venv target/deploy/venv deploy/requirements.txt kubernetes-validate
target/deploy/venv/bin/kubernetes-validate --strict -k 1.34.0 deploy/kubernetes/*.yaml
# The HPA's custom metric is the one prometheus-adapter's rules make.
target/deploy/venv/bin/python3 - <<'PY'
import yaml
adapter = yaml.safe_load(open("deploy/kubernetes/prometheus-adapter.yaml"))
made = {rule["name"]["as"] for rule in yaml.safe_load(adapter["data"]["config.yaml"])["rules"]}
hpa = yaml.safe_load(open("deploy/kubernetes/hpa.yaml"))
wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
assert wanted and wanted <= made, f"the HPA wants {wanted}, prometheus-adapter makes {made}"
PY
