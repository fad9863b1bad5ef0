#!/usr/bin/python3
"""peer_bench: fetchd end to end against raw single-thread libcurl multi.

Starts a private nginx (static 1 KiB and 100 KiB files) and a fetchd, both on
free 127.0.0.1 ports, then runs ROUNDS rounds per workload. A round runs the
same workload through

  raw     BUILD/bench/raw_curl_multi  (one thread, one CURLM, C easy handles)
  fetchd  BUILD/bench/fetchd_load     (FetchBatch calls into BUILD/service/fetchd)

in alternating order (raw first in even rounds, fetchd first in odd ones), so
drift on the machine hits both alike. For each run it records:

  req/s        requests / wall seconds of the client process (measured here)
  CPU s / 10k  client CPU (getrusage RUSAGE_CHILDREN delta) plus, for fetchd,
               the server's CPU during the run (/proc/PID/stat utime+stime)
  peak RSS     raw: the client's VmHWM, which it reports in its JSON line;
               fetchd: the server's VmHWM at the end of the session (and the
               load client's VmHWM, shown apart). The client's ru_maxrss from
               wait4 is kept in the raw numbers but not used: Linux carries
               this script's own high-water mark (~20 MB) into every child
               across fork and exec, so it is never below Python's RSS.

and prints medians, the per-round fetchd/raw ratios and the machine facts.
nginx's own CPU is recorded per run too (same server for both systems).

Run with Debian's /usr/bin/python3 (stdlib only). Nothing leaves 127.0.0.1.
nginx and fetchd are stopped on every exit path, Ctrl-C included.

  /usr/bin/python3 bench/peer_bench.py --build build-bench --rounds 3
  /usr/bin/python3 bench/peer_bench.py --only raw --rounds 1
"""

import argparse
import contextlib
import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

WORKLOAD_BYTES = {"1k": 1024, "100k": 100 * 1024}
SERVER_START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Children must not be routed through a proxy from the environment.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


class BenchError(Exception):
    """A setup step or a run failed; the message says which and why."""


def child_env():
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=20):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def proc_cpu_seconds(pid):
    """utime+stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # comm may contain spaces: the fields we want follow the last ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


class Server:
    """A long-running child (nginx or fetchd) in its own process group."""

    def __init__(self, name, argv, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"log {self.log_path}:\n{tail(self.log_path)}")

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S. Safe to call twice."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()


def wait_until(predicate, server, what, timeout_s=SERVER_START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server.check_alive()
        if predicate():
            return
        time.sleep(0.05)
    raise BenchError(f"{what} not ready after {timeout_s:.0f} s; "
                     f"log {server.log_path}:\n{tail(server.log_path)}")


def accepts_tcp(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
worker_rlimit_nofile 8192;
events {{
  worker_connections 4096;
}}
http {{
  access_log off;
  keepalive_requests 100000;
  keepalive_timeout 300s;
  sendfile on;
  tcp_nodelay on;
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  default_type application/octet-stream;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {prefix}/html;
    location = /1k {{ }}
    location = /100k {{ }}
  }}
}}
"""


def start_nginx(tmp, nginx_bin):
    prefix = os.path.join(tmp, "nginx")
    for sub in ("html", "logs", "tmp"):
        os.makedirs(os.path.join(prefix, sub))
    for name, size in WORKLOAD_BYTES.items():
        with open(os.path.join(prefix, "html", name), "wb") as f:
            f.write(bytes(ord("a") + i % 26 for i in range(size)))
    # The worker may run as an unprivileged user: let it read the files.
    for root, dirs, files in os.walk(tmp):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(prefix=prefix, port=port))
    server = Server("nginx", [nginx_bin, "-e", f"{prefix}/logs/error.log",
                              "-c", conf, "-p", prefix], tmp)

    def answers():
        try:
            with urllib.request.build_opener(
                    urllib.request.ProxyHandler({})).open(
                        f"http://127.0.0.1:{port}/1k", timeout=1) as r:
                return r.status == 200 and len(r.read()) == 1024
        except OSError:
            return False

    wait_until(answers, server, "nginx")
    return server, port


def start_fetchd(tmp, fetchd_bin, workers, tag):
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "workers": workers,
        "limits": {"maxPerHost": 64, "maxInFlight": 1024,
                   "maxBatchSize": 100000, "maxPending": 200000,
                   "streamWindow": 1024},
        # The benchmark's nginx is on loopback, which the default policy
        # denies.
        "policy": {"allow": [{"cidr": "127.0.0.0/8"}]},
    }
    conf = os.path.join(tmp, f"fetchd-{tag}.json")
    with open(conf, "w") as f:
        json.dump(config, f, indent=2)
    server = Server(f"fetchd-{tag}", [fetchd_bin, "--config", conf], tmp)
    wait_until(lambda: accepts_tcp(port), server, "fetchd")
    return server, port


def run_client(argv, timeout_s, log_dir, tag):
    """Runs one client to completion and measures it.

    Returns dict(wall_s, cpu_s, ru_maxrss_kib, report) where report is the
    client's JSON line. Raises BenchError when it fails or times out.
    """
    out_path = os.path.join(log_dir, f"{tag}.out")
    err_path = os.path.join(log_dir, f"{tag}.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=child_env())
        # Wait without reaping, so that the timeout kill can never hit a
        # recycled pid; then reap with wait4 for this child's own rusage.
        lock = threading.Lock()
        exited = False
        timed_out = []

        def kill():
            with lock:
                if not exited:
                    timed_out.append(True)
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            wall = time.perf_counter() - start
            with lock:
                exited = True
        finally:
            timer.cancel()
            if not exited:  # interrupted (Ctrl-C): do not leave it running
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((after.ru_utime - before.ru_utime) +
           (after.ru_stime - before.ru_stime))
    if timed_out:
        raise BenchError(f"{tag}: timed out after {timeout_s} s: "
                         f"{' '.join(argv)}\n{tail(err_path)}")
    if proc.returncode != 0:
        raise BenchError(f"{tag}: exit status {proc.returncode}: "
                         f"{' '.join(argv)}\n{tail(err_path)}")
    try:
        with open(out_path) as f:
            report = json.loads(f.read().strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise BenchError(f"{tag}: no JSON report ({e}): {tail(out_path)}")
    return {"wall_s": wall, "cpu_s": cpu, "ru_maxrss_kib": usage.ru_maxrss,
            "report": report}


def nginx_cpu_seconds(nginx):
    total = 0.0
    for pid in [nginx.pid] + children_of(nginx.pid):
        with contextlib.suppress(OSError):
            total += proc_cpu_seconds(pid)
    return total


def one_run(system, ctx, workload, round_no, requests):
    """One client run of `requests` requests; round_no -1 is a warm-up."""
    args = ctx.args
    url = f"http://127.0.0.1:{ctx.nginx_port}/{workload}"
    common = ["--url", url, "--requests", str(requests),
              "--concurrency", str(args.concurrency)]
    if system == "raw":
        argv = [ctx.raw_bin] + common
    else:
        argv = [ctx.load_bin, "--server", f"127.0.0.1:{ctx.fetchd_port}"
                ] + common
        if args.batch_size:
            argv += ["--batch_size", str(args.batch_size)]
    tag = f"{workload}-{'warmup' if round_no < 0 else f'r{round_no}'}-{system}"
    server_before = (proc_cpu_seconds(ctx.fetchd.pid)
                     if system == "fetchd" else 0.0)
    nginx_before = nginx_cpu_seconds(ctx.nginx)
    res = run_client(argv, args.timeout, ctx.tmp, tag)
    server_cpu = (proc_cpu_seconds(ctx.fetchd.pid) - server_before
                  if system == "fetchd" else 0.0)
    nginx_cpu = nginx_cpu_seconds(ctx.nginx) - nginx_before
    report = res["report"]
    expected_bytes = requests * WORKLOAD_BYTES[workload]
    if (report.get("requests") != requests or
            report.get("ok") != requests or
            report.get("bytes") != expected_bytes):
        raise BenchError(f"{tag}: bad report {report}, expected "
                         f"{requests} ok and {expected_bytes} bytes")
    n = requests
    run = {
        "system": system, "workload": workload, "round": round_no,
        "requests": n,
        "wall_s": res["wall_s"],
        "client_reported_s": report.get("seconds"),
        "rps": n / res["wall_s"],
        "client_cpu_s": res["cpu_s"],
        "server_cpu_s": server_cpu,
        "cpu_s_per_10k": (res["cpu_s"] + server_cpu) * 10000 / n,
        "nginx_cpu_s": nginx_cpu,
        "client_peak_rss_kib": report.get("peak_rss_kib"),
        "client_ru_maxrss_kib": res["ru_maxrss_kib"],
    }
    label = "warm-up" if round_no < 0 else f"round {round_no}"
    print(f"  {label:8s} {system:6s} {workload:4s} "
          f"{run['rps']:9.0f} req/s  {run['cpu_s_per_10k']:6.3f} CPU s/10k "
          f"(client {res['cpu_s']:.2f} s, server {server_cpu:.2f} s, "
          f"nginx {nginx_cpu:.2f} s)", flush=True)
    return run


def machine_facts(nginx_bin):
    model = "unknown"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    curl_version = "unknown"
    with contextlib.suppress(OSError, AttributeError):
        libcurl = ctypes.CDLL("libcurl.so.4")
        libcurl.curl_version.restype = ctypes.c_char_p
        curl_version = libcurl.curl_version().decode()
    nginx_version = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([nginx_bin, "-v"], capture_output=True,
                             timeout=10, env=child_env())
        nginx_version = (out.stderr or out.stdout).decode().strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "libcurl": curl_version,
        "nginx": nginx_version,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def summarize(runs, systems, workloads, fetchd_hwm_kib):
    """Per workload and system medians, plus per-round fetchd/raw ratios.

    fetchd_hwm_kib maps each workload to fetchd's VmHWM at its end.
    """
    summary = {}
    for workload in workloads:
        per = {}
        for system in systems:
            mine = [r for r in runs
                    if r["workload"] == workload and r["system"] == system]
            if not mine:
                continue
            client_kib = max(r["client_peak_rss_kib"] or 0 for r in mine)
            rss_kib = (client_kib if system == "raw"
                       else fetchd_hwm_kib.get(workload))
            per[system] = {
                "median_rps": statistics.median(r["rps"] for r in mine),
                "median_cpu_s_per_10k": statistics.median(
                    r["cpu_s_per_10k"] for r in mine),
                "peak_rss_mb": (rss_kib / 1024 if rss_kib else None),
                "client_peak_rss_mb": client_kib / 1024,
                "median_nginx_cpu_s_per_10k": statistics.median(
                    r["nginx_cpu_s"] * 10000 / r["requests"] for r in mine),
                "runs": len(mine),
            }
        ratios = {}
        if "raw" in per and "fetchd" in per:
            by_round = {}
            for r in runs:
                if r["workload"] == workload:
                    by_round.setdefault(r["round"], {})[r["system"]] = r
            rps = [p["fetchd"]["rps"] / p["raw"]["rps"]
                   for p in by_round.values() if len(p) == 2]
            cpu = [p["fetchd"]["cpu_s_per_10k"] / p["raw"]["cpu_s_per_10k"]
                   for p in by_round.values() if len(p) == 2]
            for name, values in (("rps", rps), ("cpu_per_10k", cpu)):
                ratios[name] = {"median": statistics.median(values),
                                "min": min(values), "max": max(values),
                                "per_round": values}
        summary[workload] = {"systems": per, "fetchd_over_raw": ratios}
    return summary


def print_table(summary, facts, args):
    print()
    print(f"requests {args.requests}, concurrency {args.concurrency}, "
          f"rounds {args.rounds}"
          + (f", batch size {args.batch_size}" if args.batch_size else ""))
    header = (f"{'workload':8s} {'system':7s} {'req/s':>9s} "
              f"{'CPU s/10k':>10s} {'peak RSS MB':>12s} {'client RSS MB':>14s}"
              f" {'nginx CPU s/10k':>16s}")
    print(header)
    print("-" * len(header))
    for workload, entry in summary.items():
        for system, s in entry["systems"].items():
            rss = (f"{s['peak_rss_mb']:.1f}" if s["peak_rss_mb"] is not None
                   else "n/a")
            client_rss = ("" if system == "raw"
                          else f"{s['client_peak_rss_mb']:.1f}")
            print(f"{workload:8s} {system:7s} {s['median_rps']:9.0f} "
                  f"{s['median_cpu_s_per_10k']:10.3f} {rss:>12s} "
                  f"{client_rss:>14s} "
                  f"{s['median_nginx_cpu_s_per_10k']:16.3f}")
        for name, label in (("rps", "req/s"), ("cpu_per_10k", "CPU s/10k")):
            r = entry["fetchd_over_raw"].get(name)
            if r:
                print(f"{workload:8s} fetchd/raw {label:10s} median "
                      f"{r['median']:.3f}  min {r['min']:.3f}  "
                      f"max {r['max']:.3f}")
    print()
    print("CPU s/10k: client CPU, plus fetchd's server CPU for fetchd.")
    print("peak RSS: raw = client VmHWM; fetchd = server VmHWM (its load "
          "client's VmHWM under client RSS).")
    print(f"machine: {facts['nproc']} CPUs ({facts['cpus_usable']} usable), "
          f"{facts['cpu_model']}, kernel {facts['kernel']}")
    print(f"         libcurl: {facts['libcurl']}")
    print(f"         {facts['nginx']}; nginx, fetchd and the client share "
          "the machine")
    start = " ".join(f"{x:.2f}" for x in facts["loadavg_start"])
    end = " ".join(f"{x:.2f}" for x in facts["loadavg_end"])
    print(f"         load average at start {start}, at end {end}")
    if facts["loadavg_start"][0] > 0.5:
        print("warning: the machine was busy when the benchmark started; "
              "compare the per-round ratios rather than absolute rates")


class Context:
    pass


def raise_interrupt(signum, frame):
    """SIGTERM takes the same cleanup path as Ctrl-C."""
    raise KeyboardInterrupt()


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="fetchd vs raw libcurl multi, interleaved rounds")
    p.add_argument("--build", default="./build",
                   help="CMake build dir with bench/ and service/fetchd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workload", action="append",
                   choices=sorted(WORKLOAD_BYTES),
                   help="body size; repeat for several (default 1k)")
    p.add_argument("--batch-size", type=int, default=0,
                   help="fetchd_load --batch_size (0: one batch)")
    p.add_argument("--only", choices=("raw", "fetchd"),
                   help="run one system only")
    p.add_argument("--warmup", type=int, default=2000,
                   help="requests of an unrecorded warm-up run per system "
                   "and workload (0: none)")
    p.add_argument("--workers", type=int, default=2, help="fetchd workers")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed per client run")
    p.add_argument("--nginx", default=shutil.which("nginx") or
                   "/usr/sbin/nginx")
    p.add_argument("--json", metavar="OUT", help="write raw numbers here")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    args.workload = args.workload or ["1k"]
    if args.rounds < 1 or args.requests < 1 or args.concurrency < 1:
        p.error("--rounds, --requests and --concurrency must be positive")
    return args


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    systems = [args.only] if args.only else ["raw", "fetchd"]
    build = os.path.abspath(args.build)
    ctx = Context()
    ctx.args = args
    ctx.raw_bin = os.path.join(build, "bench", "raw_curl_multi")
    ctx.load_bin = os.path.join(build, "bench", "fetchd_load")
    fetchd_bin = os.path.join(build, "service", "fetchd")
    for system, path in (("raw", ctx.raw_bin), ("fetchd", ctx.load_bin),
                         ("fetchd", fetchd_bin)):
        if system in systems and not os.access(path, os.X_OK):
            raise BenchError(f"{path} not found; build it (cmake --build "
                             f"{args.build} --target {os.path.basename(path)})"
                             " or run with --only raw")
    ctx.tmp = tempfile.mkdtemp(prefix="peer_bench.")
    ctx.nginx = ctx.fetchd = None
    failed = True
    try:
        ctx.nginx, ctx.nginx_port = start_nginx(ctx.tmp, args.nginx)
        print(f"nginx pid {ctx.nginx.pid} on 127.0.0.1:{ctx.nginx_port}",
              flush=True)
        facts = machine_facts(args.nginx)
        runs = []
        fetchd_hwm = {}
        for workload in args.workload:
            # A fresh fetchd per workload, so that its VmHWM is this one's.
            if "fetchd" in systems:
                ctx.fetchd, ctx.fetchd_port = start_fetchd(
                    ctx.tmp, fetchd_bin, args.workers, workload)
                print(f"fetchd pid {ctx.fetchd.pid} on "
                      f"127.0.0.1:{ctx.fetchd_port}", flush=True)
            if args.warmup:
                for system in systems:
                    one_run(system, ctx, workload, -1, args.warmup)
            for round_no in range(args.rounds):
                order = systems if round_no % 2 == 0 else systems[::-1]
                for system in order:
                    ctx.nginx.check_alive()
                    if ctx.fetchd:
                        ctx.fetchd.check_alive()
                    runs.append(one_run(system, ctx, workload, round_no,
                                        args.requests))
            if ctx.fetchd:
                fetchd_hwm[workload] = proc_status_kib(ctx.fetchd.pid,
                                                       "VmHWM")
                ctx.fetchd.stop()
                ctx.fetchd = None
        facts["loadavg_end"] = os.getloadavg()
        summary = summarize(runs, systems, args.workload, fetchd_hwm)
        print_table(summary, facts, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "machine": facts,
                           "fetchd_vm_hwm_kib_by_workload": fetchd_hwm,
                           "runs": runs, "summary": summary}, f, indent=2)
            print(f"raw numbers written to {args.json}")
        failed = False
    finally:
        for server in (ctx.fetchd, ctx.nginx):
            if server:
                server.stop()
        if failed or args.keep_tmp:
            print(f"logs kept in {ctx.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"peer_bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("peer_bench: interrupted", file=sys.stderr)
        sys.exit(130)
