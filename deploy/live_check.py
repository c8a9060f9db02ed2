#!/usr/bin/env python3
"""Proves the rules and dashboards work against real data. Starts the service on a fresh PostgreSQL
database with Redis, redis_exporter, postgres_exporter and a Prometheus that loads the project's
rules and scrapes them all every second; drives a short mixed load; then, through Prometheus's
HTTP API:
  - every rule evaluates without error;
  - every recording rule's expression, and the series it records, return at least one series;
  - every metric an alert names exists in the scraped data (no alert is silently dead);
  - every dashboard query, template variables substituted, parses and returns at least one series,
    also those of panels that count failures while nothing has failed.

    deploy/live_check.py --bin target/debug/openrisk [--pg URL] [--redis URL]

Targets 127.0.0.1 only; stops every process and drops its database on exit. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
SERVICE_SH = DEPLOY.parent / "scripts/service.sh"
LOAD_SECONDS = 20
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval at a 1 s scrape interval


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, token=None, body=None, headers=None):
    """(status, headers, body bytes); never raises on an HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_for(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    sys.exit(f"live check: {what} did not come up within {seconds} s")


class Stack:
    """The processes and the database of one run; `close` undoes everything."""

    def __init__(self, args):
        self.args, self.processes = args, []
        self.work = Path(tempfile.mkdtemp(prefix="openrisk-monitoring-"))
        self.database = f"openrisk_monitoring_{os.getpid()}"
        self.created = False

    def start(self, name, command, env=None):
        log = open(self.work / f"{name}.log", "wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})}, start_new_session=True)
        self.processes.append((name, process))
        return process

    def psql(self, sql):
        subprocess.run(["psql", self.args.pg, "-qc", sql], check=True, stdout=subprocess.DEVNULL)

    def database_url(self, scheme="postgres"):
        parts = urllib.parse.urlparse(self.args.pg)
        return parts._replace(scheme=scheme, path=f"/{self.database}").geturl()

    def close(self):
        for _, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if self.created:
            self.psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        shutil.rmtree(self.work, ignore_errors=True)

    def logs(self):
        for name, _ in self.processes:
            tail = (self.work / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            print(f"--- {name} (last lines)", *tail, sep="\n", file=sys.stderr)


def start_service(stack):
    stack.psql(f"CREATE DATABASE {stack.database}")
    stack.created = True
    port = free_port()
    env = {"DATABASE_URL": stack.database_url(), "OPENRISK_DATA_DIR": str(stack.work),
           "OPENRISK_LISTEN": f"127.0.0.1:{port}", "REDIS_URL": stack.args.redis, "RUST_LOG": "warn",
           # The check drives load through one token.
           "RATE_LIMIT_PER_SECOND": "0", "RATE_LIMIT_EXPENSIVE_PER_MINUTE": "0",
           "RATE_LIMIT_EXPENSIVE_CONCURRENCY": "0", "RATE_LIMIT_EXPENSIVE_CONCURRENCY_PER_TOKEN": "0"}
    run = lambda *argv: subprocess.run([stack.args.bin, *argv], env={**os.environ, **env}, check=True,
                                       capture_output=True, text=True).stdout.strip()
    run("migrate")
    token = run("org", "create", "monitoring")
    run("seed", "--org", "monitoring", "--risks", "300", "--seed", "1")
    stack.start("openrisk", [stack.args.bin, "serve"], env)
    base = f"http://127.0.0.1:{port}"
    # The readiness rule the scripts that start the service share (scripts/service.sh).
    subprocess.run(["bash", "-c", 'source "$0" && service_wait_ready "$1"', str(SERVICE_SH), base], check=True)
    return base, token, f"127.0.0.1:{port}"


def start_exporters(stack):
    redis_port, postgres_port = free_port(), free_port()
    redis_address = urllib.parse.urlparse(stack.args.redis)._replace(path="").geturl()
    stack.start("redis_exporter", ["prometheus-redis-exporter", "--redis.addr", redis_address,
                                   "--web.listen-address", f"127.0.0.1:{redis_port}"])
    dsn = stack.database_url("postgresql") + "?sslmode=disable"
    stack.start("postgres_exporter", ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{postgres_port}"],
                {"DATA_SOURCE_NAME": dsn})
    return f"127.0.0.1:{redis_port}", f"127.0.0.1:{postgres_port}"


def start_prometheus(stack, targets):
    port = free_port()
    rules = sorted(str(p) for p in (DEPLOY / "prometheus/rules").glob("*.yml"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rules,
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                           for job, target in targets.items()],
    }
    # JSON is YAML.
    (stack.work / "prometheus.yml").write_text(json.dumps(config, indent=2))
    stack.start("prometheus", ["prometheus", f"--config.file={stack.work / 'prometheus.yml'}",
                               f"--storage.tsdb.path={stack.work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}"
    wait_for("Prometheus", lambda: http("GET", f"{url}/-/ready")[0] == 200)
    return url


def drive_load(base, token, seconds):
    """Reads of every cached namespace, writes, and client errors; no server errors."""
    stop = time.monotonic() + seconds
    status, _, body = http("GET", f"{base}/api/v1/risks?limit=5", token)
    first = json.loads(body)["items"][0]["id"]
    reads = ["/api/v1/risks", "/api/v1/risks?q=service", "/api/v1/risks?status=open&sort=-score",
             f"/api/v1/risks/{first}", f"/api/v1/risks/{first}/history", f"/api/v1/risks/{first}/mitigations",
             "/api/v1/dashboard/stats", "/api/v1/dashboard/matrix", "/api/v1/dashboard/timeline",
             "/api/v1/dashboard/top-risks", "/api/v1/marketplace/connectors", "/api/v1/reports/summary",
             "/api/v1/reports/risk-register?format=csv", "/api/v1/me", "/api/v1/assets",
             "/api/v1/risks?limit=oops", "/api/v1/nowhere"]
    failures = []

    def reader():
        n = 0
        while time.monotonic() < stop:
            status, _, _ = http("GET", base + reads[n % len(reads)], token)
            if status >= 500:
                failures.append(f"GET {reads[n % len(reads)]}: {status}")
            n += 1

    def writer():
        n = 0
        while time.monotonic() < stop:
            status, headers, body = http("POST", f"{base}/api/v1/risks", token,
                                         {"title": f"Monitoring {n}", "likelihood": 1 + n % 5, "impact": 2})
            if status == 201:
                risk = json.loads(body)
                http("PATCH", f"{base}/api/v1/risks/{risk['id']}", token, {"impact": 4},
                     {"If-Match": headers["ETag"]})
                http("POST", f"{base}/api/v1/risks/{risk['id']}/mitigations", token,
                     {"title": "Patch", "due_date": "2030-01-01"})
            elif status >= 500:
                failures.append(f"POST /api/v1/risks: {status}")
            http("GET", f"{base}/api/v1/risks", None)  # 401
            n += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"live check: server errors under load: {failures[:5]}")


class Prometheus:
    def __init__(self, url):
        self.url = url

    def get(self, path, **params):
        status, _, body = http("GET", f"{self.url}{path}?{urllib.parse.urlencode(params, doseq=True)}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise ValueError(answer.get("error", f"HTTP {status}"))
        return answer["data"]

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)["result"]


def check_rules(prometheus, problems):
    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    for rule in rules:
        name = rule["name"]
        if rule["health"] != "ok":
            problems.append(f"rule {name}: {rule['health']} {rule.get('lastError', '')}")
        if rule["type"] == "recording":
            for expr in (rule["query"], name):
                if not prometheus.query(expr):
                    problems.append(f"recording rule {name}: {expr} returns no series")
        else:
            for metric in sorted(set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["query"]))):
                if not prometheus.query(f'count({{__name__="{metric}"}})'):
                    problems.append(f"alert {name}: metric {metric} is not in the scraped data")
    return len(rules)


def check_dashboards(prometheus, instance, problems):
    # "$instance" as Grafana writes it: one replica (a regular expression, escaped inside a PromQL
    # string as Grafana does), or all of them.
    one = re.escape(instance).replace("\\", "\\\\")
    checked = 0
    for path in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for variable in dashboard["templating"]["list"]:
            query = variable["query"]["query"]
            label, selector = re.fullmatch(r"label_values\((.+), (\w+)\)", query).group(2, 1)
            selector = selector.replace("$job", "openrisk")
            if not prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": selector}):
                problems.append(f"{path.name}: variable {variable['name']} ({query}) has no values")
        for panel in dashboard["panels"]:
            for target, instances in ((t, i) for t in panel["targets"] for i in (one, ".*")):
                substitutions = {"$__rate_interval": RATE_INTERVAL, "$job": "openrisk", "$instance": instances}
                expr = target["expr"]
                for variable, value in substitutions.items():
                    expr = expr.replace(variable, value)
                try:
                    if not prometheus.query(expr):
                        problems.append(f"{path.name}: {panel['title']!r}: {expr} returns no series")
                except ValueError as e:
                    problems.append(f"{path.name}: {panel['title']!r}: {expr}: {e}")
                checked += 1
    return checked


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    stack = Stack(args)
    try:
        base, token, instance = start_service(stack)
        redis, postgres = start_exporters(stack)
        prometheus = Prometheus(start_prometheus(stack, {"openrisk": instance, "redis": redis, "postgres": postgres}))
        drive_load(base, token, LOAD_SECONDS)
        # Every target scraped, and the rules evaluated over data from the load.
        wait_for("every scrape target", lambda: len(prometheus.query("up == 1")) == 3)
        time.sleep(3)
        problems = []
        rules = check_rules(prometheus, problems)
        queries = check_dashboards(prometheus, instance, problems)
        if problems:
            print("live check failed:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        print(f"live check: {rules} rules and {queries} dashboard queries return data")
        return 0
    except (subprocess.CalledProcessError, SystemExit):
        stack.logs()
        raise
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
