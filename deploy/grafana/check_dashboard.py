#!/usr/bin/env python3
"""Offline check of the fetchd Grafana dashboard (stdlib only).

    check_dashboard.py [DASHBOARD.json] [--promtool PATH]
    check_dashboard.py --self-test [--promtool PATH]

Checks:
  * structure: uid, title, schemaVersion, a `datasource` variable of type
    datasource/prometheus, `job` and `instance` query variables, unique panel
    ids, gridPos inside the 24-column grid, every non-row panel on the
    ${datasource} variable with at least one target, every target with a
    refId and a non-empty expr;
  * every metric name an expr selects is in METRICS below (the fetch_*
    contract, histograms only through _bucket/_sum/_count), and every
    contract metric is shown somewhere;
  * every expr is valid PromQL: brackets balance, and, when promtool is
    found (always with --promtool), promtool parses it (the exprs are written
    into a temporary rules file as recording rules and checked with
    `promtool check rules`).
--self-test checks the real dashboard, then runs this script on broken
copies of it and asserts each one is rejected for the expected reason.
Exit status: 0 ok, 1 check failed, 2 usage error.
"""
import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# The metric contract, kept in step with the metrics the server exports
# (fetch_* names; see deploy/README.md). name -> type.
METRICS = {
    # counters
    "fetch_requests_total": "counter",
    "fetch_request_body_bytes_total": "counter",
    "fetch_response_body_bytes_total": "counter",
    "fetch_attempts_total": "counter",
    "fetch_retries_total": "counter",
    "fetch_redirects_total": "counter",
    "fetch_connections_total": "counter",
    "fetch_rejected_calls_total": "counter",
    "fetch_denied_total": "counter",
    "fetch_grpc_server_handled_total": "counter",
    "fetch_process_cpu_seconds_total": "counter",
    "fetch_websocket_frames_total": "counter",
    "fetch_websocket_bytes_total": "counter",
    "fetch_websocket_closes_total": "counter",
    "fetch_websocket_handshake_failures_total": "counter",
    "fetch_politeness_rate_limited_requests_total": "counter",
    "fetch_politeness_paused_requests_total": "counter",
    "fetch_politeness_pauses_total": "counter",
    "fetch_circuit_breaker_transitions_total": "counter",
    "fetch_retries_denied_total": "counter",
    "fetch_stream_requests_received_total": "counter",
    "fetch_stream_room_wait_seconds_total": "counter",
    # the cluster limiter (limiter.mode REDIS; all exist in every mode)
    "fetch_limiter_mode_transitions_total": "counter",
    "fetch_limiter_redis_calls_total": "counter",
    "fetch_limiter_redis_errors_total": "counter",
    "fetch_limiter_starts_total": "counter",
    "fetch_limiter_leases_granted_total": "counter",
    "fetch_limiter_leases_released_total": "counter",
    "fetch_limiter_leases_reaped_total": "counter",
    "fetch_limiter_tokens_reserved_total": "counter",
    "fetch_limiter_tokens_returned_total": "counter",
    "fetch_limiter_tokens_dropped_total": "counter",
    # histograms
    "fetch_request_duration_seconds": "histogram",
    "fetch_phase_duration_seconds": "histogram",
    "fetch_grpc_server_handling_seconds": "histogram",
    "fetch_limiter_redis_round_trip_seconds": "histogram",
    # gauges
    "fetch_in_flight_transfers": "gauge",
    "fetch_queued_requests": "gauge",
    "fetch_delayed_retries": "gauge",
    "fetch_pending_requests": "gauge",
    "fetch_active_calls": "gauge",
    "fetch_process_resident_memory_bytes": "gauge",
    "fetch_process_heap_bytes": "gauge",
    "fetch_process_open_fds": "gauge",
    "fetch_process_start_time_seconds": "gauge",
    "fetch_build_info": "gauge",
    "fetch_serving": "gauge",
    "fetch_websockets_open": "gauge",
    "fetch_politeness_paused_hosts": "gauge",
    "fetch_circuit_breaker_hosts": "gauge",
    "fetch_adaptive_concurrency_limit": "gauge",
    "fetch_limiter_mode": "gauge",
    "fetch_limiter_leases_held": "gauge",
}
# Series Prometheus itself adds for every scrape target.
SYNTHETIC = {"up"}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# PromQL words that are not metric names when they appear bare.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
}
AGGREGATIONS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

# Grafana's interval macros are not PromQL; they become a plain range.
GRAFANA_RANGES = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")

# label_values(metric{...}, label) in a query variable.
LABEL_VALUES = re.compile(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{,]")

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
""", re.VERBOSE)


def tokenize(expr):
    """PromQL tokens as (kind, text); raises ValueError on a stray char."""
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"unexpected character {expr[pos]!r} at offset {pos}")
        pos = m.end()
        if m.lastgroup not in ("ws", "comment"):
            out.append((m.lastgroup, m.group()))
    return out


def metric_names(expr):
    """Metric names selected by expr; raises ValueError on bad brackets."""
    toks = tokenize(expr)
    names, stack = [], []
    pairs = {")": "(", "}": "{", "]": "["}
    grouping_depth = None  # stack depth of an open by(...)/on(...) list
    for i, (kind, text) in enumerate(toks):
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "op" and text in "({[":
            stack.append(text)
            continue
        if kind == "op" and text in ")}]":
            if not stack or stack[-1] != pairs[text]:
                raise ValueError(f"unbalanced {text!r}")
            stack.pop()
            if grouping_depth is not None and len(stack) < grouping_depth:
                grouping_depth = None
            continue
        if kind != "ident":
            continue
        if "{" in stack or "[" in stack or grouping_depth is not None:
            continue  # label name, or inside a range / grouping list
        if text in GROUPING and nxt == "(":
            grouping_depth = len(stack) + 1
            continue
        if text in KEYWORDS or text in AGGREGATIONS or nxt == "(":
            continue  # keyword, aggregation or function call
        names.append(text)
    if stack:
        raise ValueError(f"unbalanced {stack[-1]!r}")
    return names


def check_metric(name):
    """An error message for a metric name, or None if it is in the contract."""
    if name in SYNTHETIC:
        return None
    kind = METRICS.get(name)
    if kind == "histogram":
        return (f"histogram {name} has no series of its own; "
                f"use {name}_bucket, _sum or _count")
    if kind is not None:
        return None
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and METRICS.get(base) == "histogram":
            return None
    return f"unknown metric {name!r} (not in the fetch_* metric contract)"


def contract_family(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and METRICS.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return name if name in METRICS else None


def iter_panels(panels):
    for p in panels:
        yield p
        # Collapsed rows keep their panels inside the row.
        yield from iter_panels(p.get("panels") or [])


def uses_datasource_var(ds):
    if isinstance(ds, dict):
        return ds.get("uid") in ("${datasource}", "$datasource")
    return ds in ("${datasource}", "$datasource")


def check_structure(d, errors):
    """Structure checks; returns [(where, expr)] for every target."""
    if not isinstance(d, dict):
        errors.append("dashboard: top level is not a JSON object")
        return []
    for key in ("uid", "title"):
        if not isinstance(d.get(key), str) or not d.get(key).strip():
            errors.append(f"dashboard: missing or empty {key!r}")
    if isinstance(d.get("uid"), str) and len(d["uid"]) > 40:
        errors.append("dashboard: uid longer than 40 characters")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 30:
        errors.append("dashboard: schemaVersion missing or older than 30")

    variables = {v.get("name"): v for v in
                 (d.get("templating") or {}).get("list") or []
                 if isinstance(v, dict)}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("templating: needs a 'datasource' variable of type "
                      "datasource with query 'prometheus'")
    for name in ("job", "instance"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            errors.append(f"templating: needs a {name!r} query variable")
        elif not uses_datasource_var(v.get("datasource")):
            errors.append(f"templating: variable {name!r} must use ${{datasource}}")
    for name, v in variables.items():
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q
        m = LABEL_VALUES.match(q or "") if v.get("type") == "query" else None
        if m:
            msg = check_metric(m.group(1))
            if msg:
                errors.append(f"templating: variable {name!r}: {msg}")

    panels = d.get("panels")
    if not isinstance(panels, list) or not panels:
        errors.append("dashboard: no panels")
        return []
    exprs, ids = [], set()
    for p in iter_panels(panels):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        if p.get("id") in ids:
            errors.append(f"{where}: duplicate panel id")
        ids.add(p.get("id"))
        if not isinstance(p.get("id"), int):
            errors.append(f"{where}: id is not an integer")
        if not p.get("title"):
            errors.append(f"{where}: no title")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")):
            errors.append(f"{where}: gridPos needs integer h, w, x, y")
        elif g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24:
            errors.append(f"{where}: gridPos outside the 24-column grid")
        if p.get("type") == "row":
            continue
        if not p.get("type"):
            errors.append(f"{where}: no type")
        if not uses_datasource_var(p.get("datasource")):
            errors.append(f"{where}: datasource must be the ${{datasource}} variable")
        targets = p.get("targets")
        if not isinstance(targets, list) or not targets:
            errors.append(f"{where}: no targets")
            continue
        refids = set()
        for t in targets:
            twhere = f"{where} target {t.get('refId')}"
            if not t.get("refId"):
                errors.append(f"{twhere}: no refId")
            elif t["refId"] in refids:
                errors.append(f"{twhere}: duplicate refId")
            refids.add(t.get("refId"))
            if "datasource" in t and not uses_datasource_var(t["datasource"]):
                errors.append(f"{twhere}: datasource must be the ${{datasource}} variable")
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                errors.append(f"{twhere}: empty expr")
                continue
            exprs.append((twhere, expr))
    return exprs


def check_names(exprs, errors):
    seen = set()
    for where, expr in exprs:
        try:
            names = metric_names(expr)
        except ValueError as e:
            errors.append(f"{where}: invalid PromQL: {e}: {expr}")
            continue
        if not names:
            errors.append(f"{where}: expr selects no metric: {expr}")
        for n in names:
            msg = check_metric(n)
            if msg:
                errors.append(f"{where}: {msg}")
            fam = contract_family(n)
            if fam:
                seen.add(fam)
    for name in sorted(set(METRICS) - seen):
        errors.append(f"dashboard: contract metric {name} is not shown on any panel")


def promtool_check(promtool, exprs):
    """[(where, message)] for exprs promtool rejects."""
    def run(items):
        rules = [{"record": f"dashboard:check:{i}",
                  "expr": GRAFANA_RANGES.sub("5m", expr)}
                 for i, (_, expr) in enumerate(items)]
        # JSON is YAML: no quoting to get wrong.
        doc = {"groups": [{"name": "dashboard", "rules": rules}]}
        fd, path = tempfile.mkstemp(prefix="dashboard-rules-", suffix=".yml")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
            r = subprocess.run([promtool, "check", "rules", path],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, (r.stdout + r.stderr).replace(path, "<rules>")
        finally:
            os.unlink(path)

    if not exprs:
        return []
    rc, _ = run(exprs)
    if rc == 0:
        return []
    # Something failed: check one by one to say which.
    bad = []
    for where, expr in exprs:
        rc, out = run([(where, expr)])
        if rc != 0:
            msg = " ".join(l.strip() for l in out.splitlines()
                           if l.strip() and not l.startswith("Checking"))
            bad.append((where, f"promtool rejects expr: {msg}: {expr}"))
    if not bad:
        bad.append(("dashboard", "promtool check rules failed on the exprs together "
                                 "but accepts each one alone"))
    return bad


def check_file(path, promtool):
    """(errors, n_panels, n_exprs)."""
    errors = []
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: cannot load: {e}"], 0, 0
    exprs = check_structure(d, errors)
    check_names(exprs, errors)
    if promtool:
        for where, msg in promtool_check(promtool, exprs):
            errors.append(f"{where}: {msg}")
    n_panels = sum(1 for p in iter_panels(d.get("panels") or [])
                   if isinstance(d, dict) and p.get("type") != "row")
    return errors, n_panels, len(exprs)


def find_promtool(arg):
    if arg:
        if not (os.path.isfile(arg) and os.access(arg, os.X_OK)):
            sys.exit(f"check_dashboard: promtool {arg!r} is not an executable")
        return arg
    return shutil.which("promtool")


def self_test(dashboard, promtool):
    """The real dashboard passes; broken copies fail for the right reason."""
    errors, n_panels, n_exprs = check_file(dashboard, promtool)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"self-test: {dashboard} itself fails the check", file=sys.stderr)
        return 1
    with open(dashboard, encoding="utf-8") as f:
        good = json.load(f)

    def first_target(d):
        for p in iter_panels(d["panels"]):
            if p.get("targets"):
                return p["targets"][0]
        raise AssertionError("no target")

    def set_expr(expr):
        def mutate(d):
            first_target(d)["expr"] = expr
        return mutate

    def drop(key):
        def mutate(d):
            del d[key]
        return mutate

    def no_targets(d):
        for p in iter_panels(d["panels"]):
            if p.get("targets"):
                p["targets"] = []
                return

    def no_datasource_var(d):
        d["templating"]["list"] = [v for v in d["templating"]["list"]
                                   if v.get("name") != "datasource"]

    def duplicate_id(d):
        panels = [p for p in iter_panels(d["panels"]) if p.get("type") != "row"]
        panels[-1]["id"] = panels[0]["id"]

    def bad_variable(d):
        for v in d["templating"]["list"]:
            if v.get("name") == "instance":
                v["query"]["query"] = "label_values(fetch_bogus_info, instance)"

    cases = [
        ("unbalanced parenthesis",
         set_expr("sum(rate(fetch_requests_total[5m])"), "unbalanced"),
        ("unknown metric",
         set_expr("sum(rate(fetch_bogus_total[5m]))"), "unknown metric 'fetch_bogus_total'"),
        ("histogram without _bucket",
         set_expr("sum(fetch_request_duration_seconds)"), "histogram fetch_request_duration_seconds"),
        ("empty expr", set_expr("  "), "empty expr"),
        ("missing uid", drop("uid"), "missing or empty 'uid'"),
        ("panel without targets", no_targets, "no targets"),
        ("duplicate panel id", duplicate_id, "duplicate panel id"),
        ("no datasource variable", no_datasource_var, "'datasource' variable"),
        ("variable on an unknown metric", bad_variable,
         "variable 'instance': unknown metric 'fetch_bogus_info'"),
    ]
    if promtool:
        cases += [
            # Lexically fine; only a PromQL parser sees these.
            ("rate of an instant vector",
             set_expr("sum(rate(fetch_requests_total))"), "promtool rejects expr"),
            ("bad duration",
             set_expr("sum(rate(fetch_requests_total[5x]))"), "promtool rejects expr"),
            ("binary operator without operand",
             set_expr("sum(fetch_queued_requests) / "), "promtool rejects expr"),
        ]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="dashboard-self-test-") as tmp:
        for i, (name, mutate, want) in enumerate(cases):
            broken = copy.deepcopy(good)
            mutate(broken)
            path = os.path.join(tmp, f"broken-{i}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(broken, f)
            cmd = [sys.executable, os.path.abspath(__file__), path]
            if promtool:
                cmd += ["--promtool", promtool]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if r.returncode == 1 and want in r.stderr:
                print(f"self-test: rejected as expected: {name}")
            else:
                failed += 1
                print(f"self-test: FAIL: {name}: exit {r.returncode}, wanted 1 "
                      f"with {want!r} in stderr:\n{r.stderr}{r.stdout}",
                      file=sys.stderr)
    if not promtool:
        print("self-test: promtool not found, PromQL parser cases skipped")
    if failed:
        return 1
    print(f"self-test: OK ({dashboard}: {n_panels} panels, {n_exprs} exprs; "
          f"{len(cases)} broken copies rejected)")
    return 0


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "fetchd-dashboard.json")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dashboard", nargs="?", default=default)
    ap.add_argument("--promtool", help="promtool binary; required to be "
                    "usable when given (default: promtool on PATH, if any)")
    ap.add_argument("--self-test", action="store_true",
                    help="check that broken copies of the dashboard are rejected")
    args = ap.parse_args()
    promtool = find_promtool(args.promtool)
    if args.self_test:
        return self_test(args.dashboard, promtool)
    errors, n_panels, n_exprs = check_file(args.dashboard, promtool)
    if errors:
        for e in errors:
            print(f"check_dashboard: {e}", file=sys.stderr)
        print(f"check_dashboard: {args.dashboard}: {len(errors)} error(s)",
              file=sys.stderr)
        return 1
    print(f"check_dashboard: OK: {args.dashboard}: {n_panels} panels, "
          f"{n_exprs} exprs, promtool: {promtool or 'not found, PromQL not parsed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
