#!/usr/bin/env python3
"""Reports of a load run, from what loadtest/run.sh leaves in its directory.

    report.py DIR                      summary.md, report.html and result.json in DIR;
                                       exit 1 when a threshold failed
    report.py --compare OFF ON DIR     compare.md and report.html in DIR: cache off against cache on

DIR holds meta.json (the run's set-up), summary.json (k6's end-of-test data), samples.csv.gz (k6's
samples) and metrics.log (the replicas' /metrics, sampled once a second).
"""
import csv
import gzip
import html
import json
import math
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

SCENARIOS = json.loads((Path(__file__).parent / "scenarios.json").read_text())
RULE = re.compile(r"^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|==|!=|<|>)\s*([\d.]+)\s*$")


def percentile(values, p):
    if not values:
        return math.nan
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def fmt(value, digits=1, unit=""):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}{unit}"


def ratio(numerator, denominator):
    return numerator / denominator if denominator else None


def pct(value):
    return fmt(None if value is None else 100 * value, 1, " %")


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- k6 data


def metric(summary, name):
    return summary["metrics"].get(name, {}).get("values", {})


def thresholds(summary, scenario, latency_advisory=False):
    """Every plan and own threshold of the scenario with its observed value and outcome. With
    `latency_advisory`, latency thresholds are reported but do not decide the verdict."""
    rows = []
    for source in ("plan", "ours"):
        for name, rules in SCENARIOS[scenario]["thresholds"][source].items():
            for rule in rules:
                stat = RULE.match(rule).group(1)
                outcome = summary["metrics"].get(name, {}).get("thresholds", {}).get(rule, {})
                value = metric(summary, name).get(stat)
                rows.append({"source": source, "metric": name, "rule": rule, "value": value, "ok": outcome.get("ok", False),
                             "binding": not (latency_advisory and name == "http_req_duration")})
    return rows


def routes(summary):
    """Per route: count, latency percentiles, errors and X-Cache hit ratio."""
    rows = {}
    for key in summary["metrics"]:
        found = re.fullmatch(r"http_req_duration\{route:(.+)\}", key)
        if not found or not metric(summary, key).get("count"):
            continue
        route = found.group(1)
        duration = metric(summary, key)
        errors = metric(summary, f"errors{{route:{route}}}")
        hits = metric(summary, f"cache_hits{{route:{route}}}")
        rows[route] = {
            "count": duration["count"],
            "p50": duration["p(50)"], "p95": duration["p(95)"], "p99": duration["p(99)"], "max": duration["max"],
            "errors": errors.get("passes", 0),
            "hits": hits.get("passes", 0), "lookups": hits.get("passes", 0) + hits.get("fails", 0),
        }
    return rows


def read_samples(path):
    """Per second since the first sample: request durations, VUs, errors, cache hits, dropped
    iterations; and when step 1 began, with the times of dropped iterations (stepped shapes)."""
    seconds = defaultdict(lambda: {"durations": [], "vus": 0, "errors": 0, "hits": 0, "lookups": 0, "dropped": 0})
    first_step, dropped_at = None, []
    with gzip.open(path, "rt", newline="") as file:
        for row in csv.DictReader(file):
            name, ts, value = row["metric_name"], float(row["timestamp"]) / 1000, float(row["metric_value"])
            bucket = seconds[int(ts)]
            if name == "http_req_duration":
                bucket["durations"].append(value)
                if "step=1" in row["extra_tags"].split("&"):
                    first_step = ts if first_step is None else min(first_step, ts)
            elif name == "vus":
                bucket["vus"] = max(bucket["vus"], value)
            elif name == "errors":
                bucket["errors"] += value
            elif name == "cache_hits":
                bucket["hits"] += value
                bucket["lookups"] += 1
            elif name == "dropped_iterations":
                bucket["dropped"] += value
                dropped_at.append((ts, value))
    if not seconds:
        return [], None
    start, last = min(seconds), max(seconds)
    return [seconds[s] for s in range(start, last + 1)], (first_step, dropped_at, last + 1)


def step_cpu(rounds, begin, end):
    """Cores used by k6, by the service and by the rest (PostgreSQL, Redis…), and the machine's busy
    share, between two times."""
    inside = [r for r in rounds if r[4] is not None and begin <= r[4] <= end]
    # Rounds after k6 exited read no ticks for it.
    inside = inside[:next((i for i in range(1, len(inside)) if inside[i][2] < inside[i - 1][2]), len(inside))]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    elapsed, tick = last[4] - first[4], os.sysconf("SC_CLK_TCK")
    busy, idle = last[0] - first[0], last[1] - first[1]
    k6, service = (last[2] - first[2]) / tick / elapsed, (last[3] - first[3]) / tick / elapsed
    return {"k6_cores": k6, "service_cores": service, "other_cores": busy / tick / elapsed - k6 - service,
            "busy": busy / (busy + idle) if busy + idle else None}


def steps(summary, scenario, meta, timing, cpu):
    """Per step of a stepped shape: its target, requests/s, p95, p99, dropped iterations, and the
    CPU k6 and the service used (from `cpu_rounds`)."""
    shape = SCENARIOS[scenario]["quick" if meta["quick"] else "full"]
    length = summary.get("openrisk", {}).get("step_seconds")
    if "steps" not in shape or not length or not timing or timing[0] is None:
        return []
    first_step, dropped_at, end = timing
    rows = []
    for index, target in enumerate(shape["steps"], start=1):
        values = metric(summary, f"http_req_duration{{step:{index}}}")
        begin = first_step + (index - 1) * length
        covered = max(0.0, min(length, end - begin))
        rows.append({
            "step": index, "target": target, "count": values.get("count", 0),
            "rate": values.get("count", 0) / covered if covered else None,
            "p95": values.get("p(95)"), "p99": values.get("p(99)"),
            "dropped": sum(v for ts, v in dropped_at if begin <= ts < begin + length),
            "complete": covered >= length,
            **step_cpu(cpu, begin, begin + length),
        })
    return rows


def step_verdict(scenario, rows):
    rule = SCENARIOS[scenario].get("step_report")
    if not rule or not rows:
        return None
    key, limit = ("p95" if rule["metric"] == "p(95)" else "p99"), rule["limit_ms"]
    unit = "VUs" if SCENARIOS[scenario]["executor"] == "ramping-vus" else "visits/s"
    if SCENARIOS[scenario]["executor"] == "ramping-vus":
        broken = next((r for r in rows if r["count"] and r[key] > limit), None)
        if broken:
            return {"text": f"p95 first exceeds {limit} ms at step {broken['step']} ({broken['target']} {unit}).", "held": None}
        return {"text": f"p95 stays within {limit} ms up to the last step ({rows[-1]['target']} {unit}).", "held": None}
    held = None
    for row in rows:
        if not (row["complete"] and row["count"] and row[key] is not None and row[key] <= limit and row["dropped"] == 0):
            break
        held = row
    if held is None:
        return {"text": f"No step was held with p99 ≤ {limit} ms and no dropped iteration.", "held": None}
    return {
        "text": f"Highest step held: {held['target']} {unit} ({held['rate']:.0f} requests/s, p99 {held['p99']:.1f} ms, "
                f"no dropped iteration).",
        "held": held,
    }


# ---------------------------------------------------------------------------- server metrics

SAMPLE = re.compile(r"^(\d+) (\d+) ([a-z_]+)(?:\{(.*)\})? (\S+)$")


def read_server(path, replicas):
    """Deltas and peaks of the replicas' own metrics over the run. Each line of the log is
    `<round> <replica> <series> <value>`; the first round is taken before the load starts, and a
    series that is missing from it had not been touched yet, so it starts from 0."""
    if not path.exists():
        return None
    first_round, last = None, {}
    before = {}
    gauges = defaultdict(lambda: defaultdict(float))  # round → gauge → sum over the replicas
    for line in path.read_text().splitlines():
        found = SAMPLE.match(line)
        if not found:
            continue
        round_, replica, name, labels, value = found.groups()
        first_round = round_ if first_round is None else first_round
        key = (replica, name, labels or "")
        if round_ == first_round:
            before[key] = float(value)
        last[key] = float(value)
        if name == "db_pool_waiters" or (name == "db_pool_connections" and 'state="in_use"' in (labels or "")):
            gauges[round_][name] += float(value)
    seen = {replica for replica, _, _ in last}
    if len(seen) != replicas:
        print(f"warning: metrics of {len(seen)} of {replicas} replicas in {path}", file=sys.stderr)

    def delta(name):
        return sum(value - before.get(key, 0.0) for key, value in last.items() if key[1] == name)

    namespaces = defaultdict(lambda: {"hit": 0.0, "lookups": 0.0})
    for key, value in last.items():
        if key[1] != "cache_requests_total":
            continue
        parts = dict(re.findall(r'(\w+)="([^"]*)"', key[2]))
        change = value - before.get(key, 0.0)
        counts = namespaces[parts["namespace"]]
        if parts["result"] == "hit":
            counts["hit"] += change
        if parts["tier"] == "l1" and parts["result"] in ("hit", "miss"):
            counts["lookups"] += change
    return {
        "queries": delta("db_query_duration_seconds_count"),
        "db_seconds": delta("db_query_duration_seconds_sum"),
        "acquire_timeouts": delta("db_pool_acquire_timeouts_total"),
        "in_use_peak": max((g["db_pool_connections"] for g in gauges.values()), default=0),
        "waiters_peak": max((g["db_pool_waiters"] for g in gauges.values()), default=0),
        "namespaces": {ns: v for ns, v in sorted(namespaces.items()) if v["lookups"]},
        "cpu": read_cpu(path.read_text()),
    }


CPU = re.compile(r"^(\d+) cpu (\d+) (\d+) (\d+) (\d+)(?: (\d+(?:\.\d+)?))?$", re.M)


def cpu_rounds(log):
    """Each round's cumulative ticks: machine busy, machine idle, k6, service; and its time, if logged."""
    return [(*(int(v) for v in found.groups()[1:5]), float(found[6]) if found[6] else None)
            for found in CPU.finditer(log)]


def read_cpu(log):
    """CPU seconds over the run: the machine's busy and idle time, k6's, the service's, and the rest
    (PostgreSQL, Redis and anything else running)."""
    rounds = cpu_rounds(log)
    if len(rounds) < 2:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy, idle = (rounds[-1][i] - rounds[0][i] for i in (0, 1))
    k6 = max(r[2] for r in rounds)  # cumulative since k6 started, which was after the first round
    service = rounds[-1][3] - rounds[0][3]
    return {"busy": busy / tick, "idle": idle / tick, "k6": k6 / tick, "service": service / tick,
            "rest": (busy - k6 - service) / tick}


# ---------------------------------------------------------------------------- plots


def svg_plot(title, unit, series, width=720, height=200, top=None):
    """A line chart, inline SVG: series is [(label, colour, [y per second])]; the y axis runs up to
    `top`, or a round number above the highest value."""
    pad_left, pad_bottom, pad_top = 56, 24, 24
    length = max((len(ys) for _, _, ys in series), default=0)
    peak = max((y for _, _, ys in series for y in ys if y is not None and not math.isnan(y)), default=0) or 1
    top = top or float(f"{peak * 1.1:.2g}")
    w, h = width - pad_left - 8, height - pad_bottom - pad_top
    x = lambda i: pad_left + (w * i / max(1, length - 1))
    y = lambda v: pad_top + h - h * min(v, top) / top
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">',
             f'<text x="{pad_left}" y="15" class="title">{html.escape(title)}</text>']
    for tick in range(5):
        value = top * tick / 4
        parts.append(f'<line x1="{pad_left}" x2="{width - 8}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>')
        parts.append(f'<text x="{pad_left - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}{unit}</text>')
    for tick in range(0, length, max(1, length // 8)):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 6}" text-anchor="middle">{tick}s</text>')
    legend = pad_left + 220
    for label, colour, ys in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(ys) if v is not None and not math.isnan(v))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{legend}" y="15" fill="{colour}">■ {html.escape(label)}</text>')
        legend += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def plots(per_second):
    latency = lambda p: [percentile(s["durations"], p) if s["durations"] else None for s in per_second]
    return [
        svg_plot("Virtual users", "", [("VUs", "#555", [s["vus"] for s in per_second])]),
        svg_plot("Requests per second", "", [("requests/s", "#1f77b4", [len(s["durations"]) for s in per_second])]),
        svg_plot("Latency", " ms", [("p50", "#2ca02c", latency(50)), ("p95", "#ff7f0e", latency(95)), ("p99", "#d62728", latency(99))]),
        svg_plot("Errors per second", "", [("errors", "#d62728", [s["errors"] for s in per_second]),
                                          ("dropped iterations", "#9467bd", [s["dropped"] for s in per_second])]),
        svg_plot("Cache hit ratio (X-Cache)", " %", [("hit ratio", "#17becf",
                 [100 * s["hits"] / s["lookups"] if s["lookups"] else None for s in per_second])], top=100),
    ]


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}svg{{display:block;margin:1em 0;font-size:11px}}
.grid{{stroke:#eee}}.title{{font-weight:600;font-size:12px}}.fail{{color:#b00;font-weight:600}}.pass{{color:#070}}
</style></head><body>{body}</body></html>"""


def markdown_to_html(markdown):
    """Just enough Markdown for these reports: headings, paragraphs, bullet lists and tables."""
    out, rows = [], []

    def flush():
        if rows:
            head, *body = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in rows if not set(r) <= set("|-")]
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" +
                       "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body) + "</table>")
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            rows.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.startswith("<svg"):
            out.append(line)
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    text = "\n".join(out)
    return re.sub(r"<td>(pass|FAIL)</td>", lambda m: f'<td class="{m[1].lower()}">{m[1]}</td>', text)


# ---------------------------------------------------------------------------- one run


def analyse(directory):
    meta = json.loads((directory / "meta.json").read_text())
    summary = json.loads((directory / "summary.json").read_text())
    scenario = meta["scenario"]
    per_second, timing = read_samples(directory / "samples.csv.gz")
    metrics_log = directory / "metrics.log"
    cpu = cpu_rounds(metrics_log.read_text()) if metrics_log.exists() else []
    step_rows = steps(summary, scenario, meta, timing, cpu)
    result = {
        "meta": meta,
        "thresholds": thresholds(summary, scenario, meta.get("latency_advisory", False)),
        "routes": routes(summary),
        "steps": step_rows,
        "step_verdict": step_verdict(scenario, step_rows),
        "requests": metric(summary, "http_reqs").get("count", 0),
        "duration_s": summary["state"]["testRunDurationMs"] / 1000,
        "latency": metric(summary, "http_req_duration"),
        "errors": metric(summary, "errors").get("passes", 0),
        "stale_reads": metric(summary, "stale_reads").get("count", 0),
        "read_backs": metric(summary, "read_backs").get("count", 0),
        "dropped": metric(summary, "dropped_iterations").get("count", 0),
        "server": read_server(directory / "metrics.log", meta["replicas"]),
        "settings": summary.get("openrisk", {}),
    }
    # A run that sent nothing, or whose writes were never read back, proves nothing.
    exercised = result["requests"] > 0 and (result["read_backs"] > 0 or not result["settings"].get("write_share"))
    result["passed"] = exercised and all(t["ok"] or not t["binding"] for t in result["thresholds"]) and (
        scenario != "capacity" or (result["step_verdict"] or {}).get("held") is not None)
    return result, per_second


def setup_line(meta, settings):
    return (f"{meta['backend']}, {meta['replicas']} replica(s), cache {'on' if meta['cache'] else 'off'}, "
            f"{meta['orgs']} organizations × {meta['risks_per_org']} risks, writes {pct(settings.get('write_share'))} of sessions, "
            f"think time {settings.get('think_time')} s{', quick' if meta['quick'] else ''}"
            f"{', latency thresholds advisory' if meta.get('latency_advisory') else ''}. Commit {meta['commit']}, {meta['k6']}, "
            f"{meta['cores']} cores ({meta['cpu']}) shared by k6 and the service. Started {meta['started']}.")


def server_section(server, requests):
    if not server:
        return []
    per_request = ratio(server["queries"], requests)
    lines = ["## What the server saw (`/metrics`, all replicas)", "", table(
        ["figure", "value"],
        [["database queries (store operations)", fmt(server["queries"], 0)],
         ["database queries per request", fmt(per_request, 2)],
         ["database time (connections held)", fmt(server["db_seconds"], 2, " s")],
         ["pool connections in use, peak", fmt(server["in_use_peak"], 0)],
         ["pool waiters, peak", fmt(server["waiters_peak"], 0)],
         ["pool acquire time-outs", fmt(server["acquire_timeouts"], 0)]])]
    cpu = server.get("cpu")
    if cpu:
        total = cpu["busy"] + cpu["idle"]
        lines += ["", table(["CPU time over the run", "seconds", "share of the machine"],
                            [[what, fmt(cpu[key], 1), pct(ratio(cpu[key], total))] for what, key in
                             [("k6 (load generator)", "k6"), ("OpenRisk (replicas, load balancer)", "service"),
                              ("PostgreSQL, Redis and the rest", "rest"), ("idle", "idle")]])]
    if server["namespaces"]:
        lines += ["", table(["cache namespace", "lookups", "hit ratio"],
                            [[ns, fmt(v["lookups"], 0), pct(ratio(v["hit"], v["lookups"]))] for ns, v in server["namespaces"].items()])]
    return lines


def route_table(routes_):
    return table(["route", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "hit ratio"],
                 [[route, r["count"], fmt(r["p50"], 2), fmt(r["p95"], 2), fmt(r["p99"], 2), fmt(r["max"], 1), r["errors"],
                   pct(ratio(r["hits"], r["lookups"]))] for route, r in sorted(routes_.items())])


def verdict(threshold):
    if threshold["ok"]:
        return "pass"
    return "FAIL" if threshold["binding"] else "over (advisory)"


def report(directory):
    result, per_second = analyse(directory)
    meta, latency = result["meta"], result["latency"]
    lines = [f"# Load test: {meta['scenario']} — {'passed' if result['passed'] else 'FAILED'}", "", setup_line(meta, result["settings"]), "",
             f"{result['requests']:,} requests in {result['duration_s']:.0f} s ({fmt(ratio(result['requests'], result['duration_s']), 0)}/s): "
             f"p50 {fmt(latency.get('p(50)'), 2)} ms, p95 {fmt(latency.get('p(95)'), 2)} ms, p99 {fmt(latency.get('p(99)'), 2)} ms, "
             f"max {fmt(latency.get('max'), 1)} ms; {result['errors']} errors ({result['stale_reads']} stale reads in "
             f"{result['read_backs']} reads after a write), "
             f"{result['dropped']} dropped iterations.", ""]
    if result["thresholds"]:
        lines += ["## Thresholds", "", table(["source", "metric", "threshold", "observed", "result"],
                  [[t["source"], t["metric"], t["rule"], fmt(t["value"], 3), verdict(t)] for t in result["thresholds"]]), ""]
    if result["steps"]:
        unit = "VUs" if SCENARIOS[meta["scenario"]]["executor"] == "ramping-vus" else "visits/s"
        lines += ["## Steps", "", result["step_verdict"]["text"], "", table(
            ["step", unit, "requests", "requests/s", "p95 ms", "p99 ms", "dropped iterations",
             "k6 cores", "service cores", "other cores", "machine busy"],
            [[r["step"], r["target"], r["count"], fmt(r["rate"], 0), fmt(r["p95"], 2), fmt(r["p99"], 2), fmt(r["dropped"], 0),
              fmt(r.get("k6_cores"), 2), fmt(r.get("service_cores"), 2), fmt(r.get("other_cores"), 2),
              f"{r['busy']:.0%}" if r.get("busy") is not None else "—"]
             for r in result["steps"] if r["count"]]), ""]
    lines += ["## Per route", "", route_table(result["routes"]), ""]
    lines += server_section(result["server"], result["requests"])
    markdown = "\n".join(lines) + "\n"
    (directory / "summary.md").write_text(markdown)
    (directory / "result.json").write_text(json.dumps(result, indent=1))
    # The plots go after the opening figures, before the first table.
    opening, heading, rest = markdown.partition("\n## ")
    body = markdown_to_html(opening) + "<h2>Over time</h2>" + "".join(plots(per_second)) + markdown_to_html(heading + rest)
    (directory / "report.html").write_text(PAGE.format(title=f"{meta['scenario']} load test", body=body))
    print(markdown)
    return 0 if result["passed"] else 1


# ---------------------------------------------------------------------------- cache off against on


def group_hit_ratio(routes_, names):
    hits = sum(routes_[r]["hits"] for r in names if r in routes_)
    return ratio(hits, sum(routes_[r]["lookups"] for r in names if r in routes_))


def compare(off_dir, on_dir, directory):
    off = json.loads((off_dir / "result.json").read_text())
    on = json.loads((on_dir / "result.json").read_text())
    if not (off["server"] and on["server"]):
        sys.exit("compare: a run has no server metrics (metrics.log)")
    per_request = lambda r: ratio(r["server"]["queries"], r["requests"])
    db_per_request = lambda r: ratio(r["server"]["db_seconds"], r["requests"])
    ms_per_request = lambda r: None if db_per_request(r) is None else 1000 * db_per_request(r)
    cut = lambda figure: None if figure(off) is None or figure(on) is None or not figure(off) else 1 - figure(on) / figure(off)
    target = SCENARIOS["database_load_reduction_target"]
    query_cut, time_cut = cut(per_request), cut(db_per_request)
    verdict = lambda value: "–" if value is None else "met" if value >= target else f"missed by {100 * (target - value):.1f} points"
    lines = [f"# Cache off against cache on: {on['meta']['scenario']}", "", setup_line(on["meta"], on["settings"]), "",
             "## Database load", "", table(
                 ["figure", "cache off", "cache on", "reduction", f"target {pct(target)}"],
                 [["queries per request", fmt(per_request(off), 2), fmt(per_request(on), 2), pct(query_cut), verdict(query_cut)],
                  ["database time per request", fmt(ms_per_request(off), 3, " ms"), fmt(ms_per_request(on), 3, " ms"),
                   pct(time_cut), verdict(time_cut)],
                  ["requests", f"{off['requests']:,}", f"{on['requests']:,}", "", ""],
                  ["p95 latency", fmt(off["latency"].get("p(95)"), 2, " ms"), fmt(on["latency"].get("p(95)"), 2, " ms"), "", ""],
                  ["p99 latency", fmt(off["latency"].get("p(99)"), 2, " ms"), fmt(on["latency"].get("p(99)"), 2, " ms"), "", ""]]), "",
             "## Hit ratio against the plan's targets (X-Cache, cache on)", ""]
    rows = []
    for name, spec in SCENARIOS["hit_ratio_targets"].items():
        hit_ratio = group_hit_ratio(on["routes"], spec["routes"])
        outcome = "–" if hit_ratio is None else ("met" if hit_ratio >= spec["target"] else f"missed by {100 * (spec['target'] - hit_ratio):.1f} points")
        rows.append([name, ", ".join(spec["routes"]), pct(hit_ratio), pct(spec["target"]), outcome])
    lines += [table(["endpoint", "routes", "hit ratio", "target", "outcome"], rows), "",
              "## Per route, cache on", "", route_table(on["routes"]), "",
              "## Per route, cache off", "", route_table(off["routes"]), ""]
    markdown = "\n".join(lines) + "\n"
    (directory / "compare.md").write_text(markdown)
    (directory / "report.html").write_text(PAGE.format(title="cache off against on", body=markdown_to_html(markdown)))
    print(markdown)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--compare":
        sys.exit(compare(*(Path(a) for a in sys.argv[2:])))
    if len(sys.argv) == 2:
        sys.exit(report(Path(sys.argv[1])))
    sys.exit(__doc__)
