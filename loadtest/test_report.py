"""Tests of the load report's figures on a run made up for the purpose:
python3 -m unittest discover -s loadtest -p 'test_*.py'"""
import csv
import gzip
import io
import json
import os
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

import report

START_MS = 1_800_000_000_000
HEADER = ["metric_name", "timestamp", "metric_value", "extra_tags"]


def write_run(directory, scenario, samples, metrics_log, summary_metrics, quick=True, step_seconds=None,
              latency_advisory=False):
    (directory / "meta.json").write_text(json.dumps({
        "scenario": scenario, "quick": quick, "latency_advisory": latency_advisory, "backend": "postgres", "replicas": 2, "cache": True, "orgs": 1,
        "risks_per_org": 10, "commit": "test", "cpu": "cpu", "cores": 2, "k6": "k6", "started": "now"}))
    (directory / "summary.json").write_text(json.dumps({
        "openrisk": {"step_seconds": step_seconds, "write_share": 0.05, "think_time": 1.5},
        "state": {"testRunDurationMs": 10_000},
        "metrics": summary_metrics}))
    with gzip.open(directory / "samples.csv.gz", "wt", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for name, offset_ms, value, tags in samples:
            writer.writerow([name, START_MS + offset_ms, value, tags])
    if metrics_log is not None:
        (directory / "metrics.log").write_text(metrics_log)


def trend(count, p95, p99):
    return {"values": {"count": count, "p(50)": 1.0, "p(95)": p95, "p(99)": p99, "max": p99}}


def run_report(directory):
    with redirect_stdout(io.StringIO()):
        status = report.report(directory)
    return status, json.loads((directory / "result.json").read_text())


class ServerFigures(unittest.TestCase):
    def test_deltas_count_series_missing_before_the_load_from_zero_and_sum_replicas(self):
        log = "\n".join([
            # round 0, before the load: replica 0 has served one query, replica 1 none yet.
            '0 0 db_query_duration_seconds_count{operation="get_risk"} 1',
            '0 0 db_query_duration_seconds_sum{operation="get_risk"} 0.5',
            '0 0 db_pool_connections{state="in_use"} 0',
            '0 1 db_pool_connections{state="in_use"} 0',
            # round 1: both replicas busy at once.
            '1 0 db_pool_connections{state="in_use"} 3',
            '1 1 db_pool_connections{state="in_use"} 4',
            '1 1 db_pool_waiters 2',
            # round 2: the counters after the load; replica 1's series appeared during it.
            '2 0 db_query_duration_seconds_count{operation="get_risk"} 11',
            '2 0 db_query_duration_seconds_sum{operation="get_risk"} 1.5',
            '2 1 db_query_duration_seconds_count{operation="list_risks"} 5',
            '2 1 db_query_duration_seconds_sum{operation="list_risks"} 0.25',
            '2 0 cache_requests_total{namespace="risks",tier="l1",result="hit"} 6',
            '2 0 cache_requests_total{namespace="risks",tier="l1",result="miss"} 4',
            '2 0 cache_requests_total{namespace="risks",tier="l2",result="hit"} 1',
            '2 0 db_pool_connections{state="in_use"} 1',
            '2 1 db_pool_connections{state="in_use"} 1',
            # CPU ticks: machine busy, machine idle, k6 (gone by round 3), the service.
            "0 cpu 100 1000 0 10",
            "1 cpu 300 1100 150 60",
            "2 cpu 400 1200 180 80",
            "3 cpu 450 1300 0 90",
        ]) + "\n"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "metrics.log"
            path.write_text(log)
            server = report.read_server(path, replicas=2)
        self.assertEqual(server["queries"], 15)  # 10 on replica 0, 5 on replica 1 counted from zero
        self.assertAlmostEqual(server["db_seconds"], 1.25)
        self.assertEqual(server["in_use_peak"], 7)  # summed over the replicas within one round
        self.assertEqual(server["waiters_peak"], 2)
        self.assertEqual(server["namespaces"]["risks"], {"hit": 7, "lookups": 10})
        tick = os.sysconf("SC_CLK_TCK")
        self.assertEqual(server["cpu"], {"busy": 350 / tick, "idle": 300 / tick, "k6": 180 / tick,
                                         "service": 80 / tick, "rest": 90 / tick})


class Steps(unittest.TestCase):
    def capacity_run(self, directory, step2_dropped_at_ms, metrics_log=None):
        samples = [("http_req_duration", t, 2.0, f"route=me&step={1 + t // 5000}") for t in range(0, 15000, 100)]
        samples += [("dropped_iterations", step2_dropped_at_ms, 3, "")]
        metrics = {
            "http_req_duration": trend(150, 20.0, 40.0),
            "http_req_duration{step:1}": trend(50, 10.0, 20.0),
            "http_req_duration{step:2}": trend(50, 30.0, 60.0),
            "http_req_duration{step:3}": trend(50, 150.0, 250.0),
            "http_reqs": {"values": {"count": 150}},
            "read_backs": {"values": {"count": 4}},
        }
        write_run(directory, "capacity", samples, metrics_log, metrics, step_seconds=5)

    def test_the_highest_step_held_is_the_last_within_its_p99_limit_without_drops(self):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            self.capacity_run(directory, step2_dropped_at_ms=20_000)  # a drop after the last step
            status, result = run_report(directory)
        self.assertEqual(status, 0)
        self.assertEqual(result["step_verdict"]["held"]["target"], 500)  # step 3 broke p99 ≤ 100 ms
        self.assertEqual(result["steps"][0]["rate"], 10.0)  # 50 requests in a 5 s step

    def test_a_step_with_a_dropped_iteration_is_not_held(self):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            self.capacity_run(directory, step2_dropped_at_ms=9_900)  # the last 100 ms of step 2
            _, result = run_report(directory)
        self.assertEqual(result["steps"][1]["dropped"], 3)
        self.assertEqual(result["step_verdict"]["held"]["target"], 100)


    def test_each_step_reports_the_cores_k6_and_the_service_used(self):
        tick, start = os.sysconf("SC_CLK_TCK"), START_MS / 1000
        # Step 1 (0–5 s): k6 1.5 cores, the service 0.5, the machine busy 3 ticks in 4.
        log = "\n".join(f"{s} cpu {3 * tick * s} {tick * s} {int(1.5 * tick * s)} {tick * s // 2} {start + s}"
                        for s in range(0, 7))
        log += f"\n7 cpu {3 * tick * 7} {tick * 7} 0 {tick * 4} {start + 7}"  # k6 has exited
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            self.capacity_run(directory, step2_dropped_at_ms=20_000, metrics_log=log)
            _, result = run_report(directory)
        first = result["steps"][0]
        self.assertAlmostEqual(first["k6_cores"], 1.5)
        self.assertAlmostEqual(first["service_cores"], 0.5)
        self.assertAlmostEqual(first["other_cores"], 1.0)  # 3 cores busy in all
        self.assertAlmostEqual(first["busy"], 0.75)
        self.assertAlmostEqual(result["steps"][1]["k6_cores"], 1.5)  # up to k6's exit
        self.assertNotIn("k6_cores", result["steps"][2])  # no CPU rounds logged then


class Verdict(unittest.TestCase):
    def baseline(self, directory, p95, read_backs, error_rate=0.0, latency_advisory=False):
        metrics = {
            "http_req_duration": {"values": {"count": 10, "p(50)": 1.0, "p(95)": p95, "p(99)": p95, "max": p95},
                                  "thresholds": {"p(95)<50": {"ok": p95 < 50}}},
            "http_reqs": {"values": {"count": 10}},
            "read_backs": {"values": {"count": read_backs}},
            "errors": {"values": {"rate": error_rate},
                       "thresholds": {"rate==0": {"ok": error_rate == 0}, "rate<0.10": {"ok": error_rate < 0.10}}},
        }
        write_run(directory, "baseline", [("http_req_duration", 0, p95, "route=me")], None, metrics,
                  latency_advisory=latency_advisory)

    def test_a_failed_threshold_fails_the_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.baseline(Path(tmp), p95=60.0, read_backs=3)
            status, result = run_report(Path(tmp))
        self.assertEqual(status, 1)
        failed = [t["rule"] for t in result["thresholds"] if not t["ok"]]
        self.assertIn("p(95)<50", failed)

    def test_advisory_latency_is_reported_without_failing_the_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.baseline(Path(tmp), p95=60.0, read_backs=3, latency_advisory=True)
            status, result = run_report(Path(tmp))
            summary = (Path(tmp) / "summary.md").read_text()
        self.assertEqual(status, 0)
        self.assertIn("over (advisory)", summary)
        self.assertIn("p(95)<50", [t["rule"] for t in result["thresholds"] if not t["ok"]])

    def test_advisory_latency_still_fails_on_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.baseline(Path(tmp), p95=5.0, read_backs=3, error_rate=0.01, latency_advisory=True)
            status, _ = run_report(Path(tmp))
        self.assertEqual(status, 1)

    def test_a_run_whose_writes_were_never_read_back_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.baseline(Path(tmp), p95=5.0, read_backs=0)
            status, _ = run_report(Path(tmp))
        self.assertEqual(status, 1)


if __name__ == "__main__":
    unittest.main()
