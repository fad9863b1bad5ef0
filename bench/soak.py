#!/usr/bin/python3
"""soak: fetchd under steady mixed traffic for a long time; RSS and fds flat.

Starts the benchmark's private nginx (bench/peer_bench.py) and a fetchd,
then for --minutes (default 10) starts, every --interval seconds, --callers
fetchctl processes at once, each sending one FetchBatch of a mixed batch
(1 KiB and 100 KiB bodies, 404s, 503s retried, 200 ms delays, a total
timeout on a 2 s endpoint, a refused connection, a policy denial of
127.0.0.2, a redirect; every target is on loopback) and one streamed 100 KiB download (`fetchctl get -o /dev/null`).
Every --sample seconds it records fetchd's VmRSS and open fds.

After the warm-up (the first --warmup-minutes), fetchd's RSS must not grow
by more than max(--rss-slack-mb, 10 %); its open fds follow its connection
pool (idle connections close, busy rounds open new ones), so they must stay
under a ceiling instead: the fds at start, one connection per request that
can be in flight at once, and --fd-slack. A leak of one fd per thousand
requests would cross it within a minute. Every request must get exactly
one result of the expected kind. Prints a summary, writes the samples as
JSON (--json), exits 1 if a bound is broken.

  /usr/bin/python3 bench/soak.py --build build-bench            # 10 minutes
  /usr/bin/python3 bench/soak.py --build build-bench --minutes 1
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_bench as pb  # noqa: E402  (nginx, fetchd and process helpers)

# An address fetchd's config denies (inside the allowed 127.0.0.0/8).
DENIED_HOST = "127.0.0.2"


# (URL, extra FetchRequest JSON fields, expected error kind or status)
def mix(nginx_port, refused_port):
    base = f"http://127.0.0.1:{nginx_port}"
    retry = {"retry": {"maxAttempts": 2, "baseBackoff": "0.01s"}}
    items = [(f"{base}/1k", {}, 200)] * 20 + [(f"{base}/100k", {}, 200)] * 5
    items += [(f"{base}/missing", {}, 404)] * 3
    items += [(f"{base}/503", retry, 503)] * 2
    items += [(f"{base}/delay", {}, 200)] * 2
    items += [(f"{base}/redirect", {}, 200)]
    items += [(f"{base}/slow", {"timeouts": {"total": "0.3s"}},
               "ERROR_KIND_TOTAL_TIMEOUT")]
    items += [(f"http://127.0.0.1:{refused_port}/", {"retry": {"maxAttempts": 1}},
               "ERROR_KIND_CONNECT")]
    # Loopback too (nothing here leaves the machine), denied by the config.
    items += [(f"http://{DENIED_HOST}:{nginx_port}/1k", {},
               "ERROR_KIND_DENIED")]
    return items


def batch_file(path, items):
    with open(path, "w") as f:
        for url, extra, _ in items:
            f.write(json.dumps({"url": url, **extra}) + "\n")


def check_results(stdout, items, tally):
    """One result per request, each of the expected kind; counts in tally."""
    results = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    if len(results) != len(items):
        tally["missing_or_extra"] += abs(len(items) - len(results))
    seen = set()
    for r in results:
        index = r.get("index", 0)
        if index in seen:
            tally["duplicates"] += 1
        seen.add(index)
        if index >= len(items):
            tally["unexpected"] += 1
            continue
        want = items[index][2]
        got = r.get("error") or r.get("status")
        key = str(got)
        tally["kinds"][key] = tally["kinds"].get(key, 0) + 1
        if got != want:
            tally["unexpected"] += 1
            if tally["unexpected"] <= 5:
                print(f"  unexpected result for {items[index][0]}: {got} "
                      f"(want {want}): {r.get('errorMessage', '')}",
                      flush=True)
    tally["requests"] += len(items)


def heap_bytes(metrics_url):
    """fetch_process_heap_bytes by state from fetchd's /metrics ({} if the
    binary doesn't run on tcmalloc)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    heap = {}
    for line in text.splitlines():
        m = re.match(r'fetch_process_heap_bytes\{state="(\w+)"\} (\S+)$', line)
        if m:
            heap[m.group(1)] = float(m.group(2))
    return heap


def sample(pid, metrics_url):
    return {"t": time.monotonic(),
            "rss_kib": pb.proc_status_kib(pid, "VmRSS"),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "heap_bytes": heap_bytes(metrics_url)}


def slope_mb_per_min(points):
    if len(points) < 3:
        return 0.0
    xs = [p["t"] for p in points]
    ys = [p["rss_kib"] / 1024 for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else 60 * sum(
        (x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="./build-bench")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup-minutes", type=float, default=1.0)
    p.add_argument("--interval", type=float, default=0.5,
                   help="seconds between rounds of callers")
    p.add_argument("--callers", type=int, default=3)
    p.add_argument("--sample", type=float, default=5.0)
    p.add_argument("--rss-slack-mb", type=float, default=8.0)
    p.add_argument("--fd-slack", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--nginx", default=shutil.which("nginx") or
                   "/usr/sbin/nginx")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    build = os.path.abspath(args.build)
    fetchd_bin = os.path.join(build, "service", "fetchd")
    fetchctl = os.path.join(build, "client", "fetchctl")
    for path in (fetchd_bin, fetchctl):
        if not os.access(path, os.X_OK):
            raise pb.BenchError(f"{path} not found; build it first")
    signal.signal(signal.SIGTERM, pb.raise_interrupt)
    tmp = tempfile.mkdtemp(prefix="soak.")
    nginx = fetchd = None
    failed = True
    try:
        nginx, port, _, _ = pb.start_nginx(tmp, args.nginx)
        metrics_port_file = os.path.join(tmp, "metrics.port")
        fetchd, fport = pb.start_fetchd(
            tmp, fetchd_bin, args.workers, "soak", deny=[f"{DENIED_HOST}/32"],
            extra_args=["--metrics_port_file", metrics_port_file])
        pb.wait_until(lambda: os.path.exists(metrics_port_file) and
                      os.path.getsize(metrics_port_file) > 0,
                      fetchd, "fetchd's metrics port")
        with open(metrics_port_file) as f:
            metrics_url = f"http://127.0.0.1:{int(f.read())}/metrics"
        refused = pb.free_port()  # nothing listens there
        items = mix(port, refused)
        bfile = os.path.join(tmp, "batch.jsonl")
        batch_file(bfile, items)
        server = f"127.0.0.1:{fport}"
        tally = {"requests": 0, "duplicates": 0, "missing_or_extra": 0,
                 "unexpected": 0, "kinds": {}, "streams": 0,
                 "stream_failures": 0, "rounds": 0}
        samples = [sample(fetchd.pid, metrics_url)]
        start = time.monotonic()
        end = start + args.minutes * 60
        next_sample = start + args.sample
        next_round = start
        print(f"soak: {args.minutes:g} min, {args.callers} callers every "
              f"{args.interval:g} s, {len(items)} requests + 1 stream each; "
              f"fetchd pid {fetchd.pid}", flush=True)
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_round:
                next_round += args.interval
                procs = []
                for _ in range(args.callers):
                    procs.append(("batch", subprocess.Popen(
                        [fetchctl, "--server", server, "--no-progress",
                         "batch", "-f", bfile], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL, env=pb.child_env())))
                procs.append(("stream", subprocess.Popen(
                    [fetchctl, "--server", server, "--no-progress", "get",
                     f"http://127.0.0.1:{port}/100k", "-o", "/dev/null"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env=pb.child_env())))
                for kind, proc in procs:
                    out, _ = proc.communicate(timeout=60)
                    if kind == "batch":
                        check_results(out.decode(), items, tally)
                    else:
                        tally["streams"] += 1
                        if proc.returncode != 0:
                            tally["stream_failures"] += 1
                tally["rounds"] += 1
            if time.monotonic() >= next_sample:
                next_sample += args.sample
                fetchd.check_alive()
                samples.append(sample(fetchd.pid, metrics_url))
            time.sleep(max(0.0, min(next_round, next_sample) -
                           time.monotonic()))
        samples.append(sample(fetchd.pid, metrics_url))
        elapsed = time.monotonic() - start
        warm_t = start + args.warmup_minutes * 60
        warm = [s for s in samples if s["t"] >= warm_t] or samples[-1:]
        base = warm[0]
        last = samples[-1]
        rss = {"start_mb": samples[0]["rss_kib"] / 1024,
               "after_warmup_mb": base["rss_kib"] / 1024,
               "end_mb": last["rss_kib"] / 1024,
               "max_mb": max(s["rss_kib"] for s in samples) / 1024,
               "slope_mb_per_min_after_warmup": slope_mb_per_min(warm)}
        fds = {"start": samples[0]["fds"], "after_warmup": base["fds"],
               "end": last["fds"], "max": max(s["fds"] for s in samples)}
        rate = tally["requests"] / elapsed
        print(f"soak: {elapsed / 60:.1f} min, {tally['rounds']} rounds, "
              f"{tally['requests']} requests ({rate:.0f}/s) + "
              f"{tally['streams']} streams", flush=True)
        print(f"  results: {json.dumps(tally['kinds'], sort_keys=True)}")
        print(f"  fetchd RSS MB: start {rss['start_mb']:.1f}, after warm-up "
              f"{rss['after_warmup_mb']:.1f}, end {rss['end_mb']:.1f}, max "
              f"{rss['max_mb']:.1f}; slope after warm-up "
              f"{rss['slope_mb_per_min_after_warmup']:+.3f} MB/min")
        heap = {}
        if base["heap_bytes"] and last["heap_bytes"]:
            def mb(by_state):
                return {k: v / (1024 * 1024) for k, v in by_state.items()}
            heap = {"after_warmup_mb": mb(base["heap_bytes"]),
                    "end_mb": mb(last["heap_bytes"]),
                    "max_in_use_mb": max(mb(s["heap_bytes"]).get("in_use", 0)
                                         for s in warm)}
            print("  fetchd heap MB (tcmalloc), after warm-up -> end: " +
                  ", ".join(f"{k} {heap['after_warmup_mb'][k]:.1f} -> "
                            f"{heap['end_mb'][k]:.1f}"
                            for k in sorted(heap["end_mb"])) +
                  f"; max in_use {heap['max_in_use_mb']:.1f}")
        problems = []
        growth = rss["end_mb"] - rss["after_warmup_mb"]
        allowed = max(args.rss_slack_mb, 0.1 * rss["after_warmup_mb"])
        if growth > allowed:
            problems.append(f"RSS grew {growth:.1f} MB after warm-up "
                            f"(allowed {allowed:.1f})")
        ceiling = (fds["start"] + args.callers * (len(items) + 1) +
                   args.fd_slack)
        fds["ceiling"] = ceiling
        if fds["max"] > ceiling:
            problems.append(f"fds reached {fds['max']}, above the ceiling "
                            f"{ceiling}")
        print(f"  fetchd fds: start {fds['start']}, after warm-up "
              f"{fds['after_warmup']}, end {fds['end']}, max {fds['max']} "
              f"(ceiling {fds['ceiling']})")
        for key in ("duplicates", "missing_or_extra", "unexpected",
                    "stream_failures"):
            if tally[key]:
                problems.append(f"{tally[key]} {key.replace('_', ' ')}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "elapsed_s": elapsed,
                           "tally": tally, "rss": rss, "heap": heap,
                           "fds": fds,
                           "samples": samples, "problems": problems}, f,
                          indent=2)
        for problem in problems:
            print(f"soak: FAIL: {problem}")
        if not problems:
            print("soak: OK")
        failed = False
        return 1 if problems else 0
    finally:
        for s in (fetchd, nginx):
            if s:
                s.stop()
        if failed:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except pb.BenchError as e:
        print(f"soak: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        sys.exit(130)
