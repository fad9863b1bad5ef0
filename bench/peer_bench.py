#!/usr/bin/python3
"""peer_bench: fetchd end to end against its peers, side by side.

Starts a private nginx (1 worker, loopback; static 1 KiB, 100 KiB and 1 GiB
files, a 200 ms and a 2 s delay endpoint from Debian's echo module, and an
HTTP/2 + TLS listener with a certificate made for the run) and a fetchd, both
on free 127.0.0.1 ports, then runs ROUNDS rounds per workload. A round runs
the same workload through every system, in a rotating order (A B C D, then
B C D A, ...) so drift on the machine hits all alike:

  raw      BUILD/bench/raw_curl_multi  (one thread, one CURLM, C easy handles)
  fetchd   BUILD/bench/fetchd_load     (FetchBatch calls into BUILD/service/fetchd)
  aiohttp  bench/py_client.py --lib aiohttp  (one ClientSession, TCPConnector)
  httpx    bench/py_client.py --lib httpx    (one AsyncClient, Limits)
  python   bench/py_client.py --lib fetchd   (fetchd's Python client,
           client/python: one fetch_many() into the same fetchd)

Workloads (requests, concurrency): 1k (20000, 64), 100k (2000, 64), delay
(256 requests to the 200 ms endpoint, 256 at once; ideal 0.2 s), h2 (1 KiB
over HTTP/2 + TLS to one host, 20000, 64; aiohttp speaks HTTP/1.1 only, so
it runs h2 over HTTP/1.1 + TLS and is marked so). --scale multiplies the
request counts (quick checks).

For each run it records:

  req/s        requests / wall seconds of the client process (measured here)
  CPU s / 10k  client CPU (getrusage RUSAGE_CHILDREN delta) plus, for fetchd
               and python, the server's CPU during the run (/proc/PID/stat
               utime+stime)
  peak RSS     raw and the Python peers: the client's VmHWM, which it reports
               in its JSON line; fetchd: the server's VmHWM at the end of the
               workload (a fresh fetchd per workload), its client's apart.

Then, once each (--extras, default all):

  c10k     10,000 requests in one batch to the 2 s endpoint, all in flight
           at once: fetchd's VmHWM and the batch's wall time (raw alike)
  stream   a 1 GiB body streamed through fetchd by `fetchctl get -o
           /dev/null`: fetchd's RSS before and its VmHWM after
  unary    BUILD/bench/unary_latency: N sequential unary Fetch calls against
           N direct libcurl GETs of the same URL, p50/p99 and the difference

and prints medians, the per-round fetchd/peer ratios, the targets of issue 6
with pass/fail, and the machine facts; --markdown writes the same as tables.

Run with Debian's /usr/bin/python3 (stdlib; the peers need python3-aiohttp,
python3-httpx and python3-h2; python needs BUILD/client/python/site, the
fetchd_python target). Nothing leaves 127.0.0.1. nginx and fetchd
are stopped on every exit path, Ctrl-C included.

  /usr/bin/python3 bench/peer_bench.py --build build-bench --rounds 3
  /usr/bin/python3 bench/peer_bench.py --systems raw,fetchd --workload 1k
  /usr/bin/python3 bench/peer_bench.py --scale 0.1 --rounds 1   # smoke test
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

# name: (path, https, body bytes, requests, concurrency)
WORKLOADS = {
    "1k": ("/1k", False, 1024, 20000, 64),
    "100k": ("/100k", False, 100 * 1024, 2000, 64),
    "delay": ("/delay", False, 3, 256, 256),
    "h2": ("/1k", True, 1024, 20000, 64),
}
STATIC_FILES = {"1k": 1024, "100k": 100 * 1024}
# stream: fetchd_load through one FetchStream call instead of FetchBatch.
SYSTEMS = ("raw", "fetchd", "stream", "aiohttp", "httpx", "python")
# Systems whose requests run in the workload's fetchd.
VIA_FETCHD = ("fetchd", "stream", "python")
EXTRAS = ("c10k", "stream", "unary", "cluster")
# cluster: requests per round (3 replicas together), each replica's load
# client's concurrency, and the cluster-wide limit of the busy host
# (generous, twice what the clients ask: the comparison is of overhead).
CLUSTER_REQUESTS = 30000
CLUSTER_CONCURRENCY = 32
CLUSTER_REPLICAS = 3
CLUSTER_LIMIT = 2 * CLUSTER_REPLICAS * CLUSTER_CONCURRENCY
C10K = 10000
STREAM_BYTES = 1 << 30
HERE = os.path.dirname(os.path.abspath(__file__))
# The Python peers run on Debian's interpreter, whatever python is first on
# PATH (python3-aiohttp, python3-httpx).
PY = "/usr/bin/python3"
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
load_module {echo_module};
worker_rlimit_nofile 40000;
events {{
  worker_connections 30000;
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
  http2_max_concurrent_streams 256;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=16384;
    listen 127.0.0.1:{tls_port} ssl http2 backlog=4096;
    ssl_certificate {prefix}/tls/server.pem;
    ssl_certificate_key {prefix}/tls/server.key;
    root {prefix}/html;
    location = /1k {{ }}
    location = /100k {{ }}
    location = /1g {{ }}
    location = /delay {{ echo_sleep 0.2; echo ok; }}
    location = /slow {{ echo_sleep 2; echo ok; }}
    location = /503 {{ return 503; }}
    location = /redirect {{ return 302 /1k; }}
  }}
}}
"""


ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"


def make_tls(tls_dir):
    """A CA and a server certificate for 127.0.0.1, made for this run."""
    def openssl(*argv):
        out = subprocess.run(["openssl", *argv], capture_output=True,
                             env=child_env(), timeout=60)
        if out.returncode != 0:
            raise BenchError(f"openssl {' '.join(argv)}: "
                             f"{out.stderr.decode(errors='replace')}")
    os.makedirs(tls_dir)
    ca_key, ca = f"{tls_dir}/ca.key", f"{tls_dir}/ca.pem"
    key, csr, cert = (f"{tls_dir}/server.key", f"{tls_dir}/server.csr",
                      f"{tls_dir}/server.pem")
    ext = f"{tls_dir}/ext.cnf"
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "2", "-subj", "/CN=peer_bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
            "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca


def start_nginx(tmp, nginx_bin):
    prefix = os.path.join(tmp, "nginx")
    for sub in ("html", "logs", "tmp"):
        os.makedirs(os.path.join(prefix, sub))
    for name, size in STATIC_FILES.items():
        with open(os.path.join(prefix, "html", name), "wb") as f:
            f.write(bytes(ord("a") + i % 26 for i in range(size)))
    # Sparse: 1 GiB of zeros that takes no disk.
    with open(os.path.join(prefix, "html", "1g"), "wb") as f:
        f.truncate(STREAM_BYTES)
    if not os.path.exists(ECHO_MODULE):
        raise BenchError(f"{ECHO_MODULE} missing: apt-get install "
                         "libnginx-mod-http-echo (scripts/install-deps.sh)")
    ca = make_tls(os.path.join(prefix, "tls"))
    # The worker may run as an unprivileged user: let it read the files.
    for root, dirs, files in os.walk(tmp):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    port, tls_port = free_port(), free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(prefix=prefix, port=port, tls_port=tls_port,
                                  echo_module=ECHO_MODULE))
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
    return server, port, tls_port, ca


def start_fetchd(tmp, fetchd_bin, workers, tag, window=1024, deny=(),
                 extra_args=(), extra_config=None):
    """A fetchd whose limits let every workload run at its concurrency.

    `window` is limits.stream_window, which also bounds a batch's requests in
    flight (c10k needs 10,000); `deny` lists CIDRs the policy refuses although
    they are in the allowed 127.0.0.0/8.
    """
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "workers": workers,
        "metrics": {"listen": "127.0.0.1:0"},
        "limits": {"maxPerHost": 16384, "maxInFlight": 16384,
                   "maxBatchSize": 100000, "maxPending": 200000,
                   "streamWindow": window},
        # The benchmark's nginx is on loopback, which the default policy
        # denies.
        "policy": {"allow": [{"cidr": "127.0.0.0/8"}],
                   "deny": [{"cidr": cidr} for cidr in deny]},
        **(extra_config or {}),
    }
    conf = os.path.join(tmp, f"fetchd-{tag}.json")
    with open(conf, "w") as f:
        json.dump(config, f, indent=2)
    server = Server(f"fetchd-{tag}", [fetchd_bin, "--config", conf,
                                      *extra_args], tmp)
    wait_until(lambda: accepts_tcp(port), server, "fetchd")
    return server, port


def run_client(argv, timeout_s, log_dir, tag, json_report=True, env=None):
    """Runs one client to completion and measures it; `env` adds to the
    child's environment.

    Returns dict(wall_s, cpu_s, ru_maxrss_kib, report) where report is the
    client's JSON line. Raises BenchError when it fails or times out.
    """
    out_path = os.path.join(log_dir, f"{tag}.out")
    err_path = os.path.join(log_dir, f"{tag}.err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env={**child_env(), **(env or {})})
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
    report = None
    if json_report:
        try:
            with open(out_path) as f:
                report = json.loads(f.read().strip().splitlines()[-1])
        except (ValueError, IndexError) as e:
            raise BenchError(f"{tag}: no JSON report ({e}): "
                             f"{tail(out_path)}")
    return {"wall_s": wall, "cpu_s": cpu, "ru_maxrss_kib": usage.ru_maxrss,
            "report": report}


def nginx_cpu_seconds(nginx):
    total = 0.0
    for pid in [nginx.pid] + children_of(nginx.pid):
        with contextlib.suppress(OSError):
            total += proc_cpu_seconds(pid)
    return total


def workload_spec(workload, scale):
    path, https, size, requests, concurrency = WORKLOADS[workload]
    return path, https, size, max(1, int(requests * scale)), concurrency


def one_run(system, ctx, workload, round_no, requests=None):
    """One client run of `workload`; round_no -1 is a warm-up.

    Returns the run's record, or None when the system can't run it.
    """
    args = ctx.args
    path, https, size, n, concurrency = workload_spec(workload, args.scale)
    if requests is not None:
        n = requests
    port = ctx.nginx_tls_port if https else ctx.nginx_port
    url = f"{'https' if https else 'http'}://127.0.0.1:{port}{path}"
    common = ["--url", url, "--requests", str(n)]
    env = None
    if system == "raw":
        argv = [ctx.raw_bin, *common, "--concurrency", str(concurrency)]
        if https:
            argv += ["--cacert", ctx.ca]
    elif system in ("fetchd", "stream"):
        argv = [ctx.load_bin, "--server", f"127.0.0.1:{ctx.fetchd_port}",
                *common, "--concurrency", str(concurrency)]
        if https:
            argv += ["--cacert", ctx.ca]
        if system == "stream":
            argv.append("--stream")
        elif args.batch_size:
            argv += ["--batch_size", str(args.batch_size)]
    else:
        lib = "fetchd" if system == "python" else system
        argv = [PY, os.path.join(HERE, "py_client.py"), "--lib", lib,
                *common, "--concurrency", str(concurrency)]
        if system == "python":
            argv += ["--server", f"127.0.0.1:{ctx.fetchd_port}"]
            env = {"PYTHONPATH": ctx.python_site}
        if https:
            argv += ["--cacert", ctx.ca]
            if system in ("httpx", "python"):
                argv.append("--http2")
    tag = f"{workload}-{'warmup' if round_no < 0 else f'r{round_no}'}-{system}"
    server_before = (proc_cpu_seconds(ctx.fetchd.pid)
                     if system in VIA_FETCHD else 0.0)
    nginx_before = nginx_cpu_seconds(ctx.nginx)
    res = run_client(argv, args.timeout, ctx.tmp, tag, env=env)
    server_cpu = (proc_cpu_seconds(ctx.fetchd.pid) - server_before
                  if system in VIA_FETCHD else 0.0)
    nginx_cpu = nginx_cpu_seconds(ctx.nginx) - nginx_before
    report = res["report"]
    expected_bytes = n * size
    if (report.get("requests") != n or report.get("ok") != n or
            report.get("bytes") != expected_bytes):
        raise BenchError(f"{tag}: bad report {report}, expected "
                         f"{n} ok and {expected_bytes} bytes")
    run = {
        "system": system, "workload": workload, "round": round_no,
        "requests": n, "concurrency": concurrency,
        "wall_s": res["wall_s"],
        "client_reported_s": report.get("seconds"),
        "rps": n / res["wall_s"],
        "client_cpu_s": res["cpu_s"],
        "server_cpu_s": server_cpu,
        "cpu_s_per_10k": (res["cpu_s"] + server_cpu) * 10000 / n,
        "server_cpu_s_per_10k": server_cpu * 10000 / n,
        "nginx_cpu_s": nginx_cpu,
        "client_peak_rss_kib": report.get("peak_rss_kib"),
        "client_ru_maxrss_kib": res["ru_maxrss_kib"],
    }
    label = "warm-up" if round_no < 0 else f"round {round_no}"
    print(f"  {label:8s} {system:7s} {workload:5s} "
          f"{run['rps']:9.0f} req/s  {run['client_reported_s']:7.3f} s  "
          f"{run['cpu_s_per_10k']:6.3f} CPU s/10k "
          f"(client {res['cpu_s']:.2f} s, server {server_cpu:.2f} s, "
          f"nginx {nginx_cpu:.2f} s)", flush=True)
    return run


def rss_kib(pid, key="VmRSS"):
    return proc_status_kib(pid, key)


def extra_c10k(ctx):
    """10,000 requests in flight at once to the 2 s endpoint."""
    args = ctx.args
    n = max(1, int(C10K * min(1.0, args.scale * 10)))
    url = f"http://127.0.0.1:{ctx.nginx_port}/slow"
    fetchd, port = start_fetchd(ctx.tmp, ctx.fetchd_bin, args.workers,
                                "c10k", window=n + 1024)
    try:
        before = rss_kib(fetchd.pid)
        res = run_client([ctx.load_bin, "--server", f"127.0.0.1:{port}",
                          "--url", url, "--requests", str(n),
                          "--concurrency", str(n)],
                         args.timeout, ctx.tmp, "c10k-fetchd")
        hwm = rss_kib(fetchd.pid, "VmHWM")
        fds = len(os.listdir(f"/proc/{fetchd.pid}/fd"))
    finally:
        fetchd.stop()
    raw = run_client([ctx.raw_bin, "--url", url, "--requests", str(n),
                      "--concurrency", str(n)], args.timeout, ctx.tmp,
                     "c10k-raw")
    out = {"requests": n, "fetchd_rss_before_mb": before / 1024,
           "fetchd_vm_hwm_mb": hwm / 1024,
           "fetchd_seconds": res["report"]["seconds"],
           "fetchd_ok": res["report"]["ok"], "fetchd_fds_after": fds,
           "raw_seconds": raw["report"]["seconds"],
           "raw_peak_rss_mb": raw["report"]["peak_rss_kib"] / 1024}
    print(f"  c10k     {n} in flight: fetchd VmHWM {out['fetchd_vm_hwm_mb']:.0f}"
          f" MB (from {out['fetchd_rss_before_mb']:.0f} MB), batch "
          f"{out['fetchd_seconds']:.2f} s; raw {out['raw_seconds']:.2f} s, "
          f"{out['raw_peak_rss_mb']:.0f} MB", flush=True)
    return out


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=5) as r:
        return r.read().decode()


def metric_sum(text, name, labels=""):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or labels not in line:
            continue
        rest = line[len(name):]
        if rest[:1] not in ("{", " "):
            continue
        total += float(line.rsplit(" ", 1)[1])
    return total


def cluster_round(ctx, mode, n, url, round_no):
    """3 fetchd replicas (limiter `mode`: local or redis) fetching `n`
    requests of `url` together, a third each through its own fetchd_load."""
    args = ctx.args
    tag = f"cluster-{mode}-r{round_no}"
    servers = []
    redis = None
    try:
        limiter = {}
        if mode == "redis":
            sock = os.path.join(ctx.tmp, f"{tag}-redis.sock")
            redis = Server(f"{tag}-redis", [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port", "0", "--unixsocket", sock, "--unixsocketperm",
                "700", "--save", "", "--appendonly", "no"], ctx.tmp)
            wait_until(lambda: os.path.exists(sock), redis, "redis-server")
            limiter = {"mode": "REDIS", "redis": {"address": f"unix:{sock}"},
                       "expectedReplicas": CLUSTER_REPLICAS,
                       "leaseTtl": "2s"}
        ports = []
        for i in range(CLUSTER_REPLICAS):
            metrics_file = os.path.join(ctx.tmp, f"{tag}-metrics{i}")
            server, port = start_fetchd(
                ctx.tmp, ctx.fetchd_bin, 1, f"{tag}-{i}",
                extra_args=[f"--metrics_port_file={metrics_file}"],
                extra_config={
                    "limiter": limiter,
                    "politeness": {"default": {
                        "maxConcurrency": CLUSTER_LIMIT}}},
            )
            servers.append(server)
            wait_until(lambda: os.path.exists(metrics_file) and
                       os.path.getsize(metrics_file) > 0, server,
                       "fetchd metrics port")
            with open(metrics_file) as f:
                ports.append((port, int(f.read().strip())))
        if mode == "redis":
            # A new Redis: one lease TTL of learning first.
            wait_until(lambda: all(
                metric_sum(scrape(m), "fetch_limiter_mode", 'mode="redis"')
                == 1 for _, m in ports), servers[0], "limiter mode redis")
        calls_before = sum(metric_sum(scrape(m),
                                      "fetch_limiter_redis_calls_total")
                           for _, m in ports)
        cpu_before = [proc_cpu_seconds(s.pid) for s in servers]
        per = n // CLUSTER_REPLICAS
        concurrency = CLUSTER_CONCURRENCY
        results = [None] * CLUSTER_REPLICAS
        errors = []

        def load(i):
            try:
                results[i] = run_client(
                    [ctx.load_bin, "--server", f"127.0.0.1:{ports[i][0]}",
                     "--url", url, "--requests", str(per),
                     "--concurrency", str(concurrency)],
                    args.timeout, ctx.tmp, f"{tag}-load{i}")
            except BenchError as e:
                errors.append(e)

        start = time.perf_counter()
        threads = [threading.Thread(target=load, args=(i,))
                   for i in range(CLUSTER_REPLICAS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        if errors:
            raise errors[0]
        for i, res in enumerate(results):
            if res["report"].get("ok") != per:
                raise BenchError(f"{tag}: replica {i}: {res['report']}")
        cpu = sum(proc_cpu_seconds(s.pid) - b
                  for s, b in zip(servers, cpu_before))
        calls = sum(metric_sum(scrape(m), "fetch_limiter_redis_calls_total")
                    for _, m in ports) - calls_before
        total = per * CLUSTER_REPLICAS
        run = {"mode": mode, "round": round_no, "requests": total,
               "wall_s": wall, "rps": total / wall,
               "fetchd_cpu_s_per_10k": cpu * 10000 / total,
               "redis_calls_per_request": calls / total}
        print(f"  cluster  round {round_no} {mode:5s} {run['rps']:9.0f} req/s"
              f"  {run['fetchd_cpu_s_per_10k']:6.3f} fetchd CPU s/10k"
              f"  {run['redis_calls_per_request']:.4f} Redis calls/request",
              flush=True)
        return run
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()


def extra_cluster(ctx):
    """3 replicas on one busy host, limiter REDIS vs LOCAL, rounds
    alternating: the cost of sharing the limits through Redis."""
    args = ctx.args
    n = max(CLUSTER_REPLICAS * 100, int(CLUSTER_REQUESTS * args.scale))
    url = f"http://127.0.0.1:{ctx.nginx_port}/1k"
    runs = {"local": [], "redis": []}
    for round_no in range(args.rounds):
        for mode in ("local", "redis"):
            runs[mode].append(cluster_round(ctx, mode, n, url, round_no))
    rps_ratio = [r["rps"] / l["rps"]
                 for r, l in zip(runs["redis"], runs["local"])]
    cpu_ratio = [r["fetchd_cpu_s_per_10k"] / l["fetchd_cpu_s_per_10k"]
                 for r, l in zip(runs["redis"], runs["local"])]
    out = {
        "requests": n, "limit": CLUSTER_LIMIT, "replicas": CLUSTER_REPLICAS,
        "runs": runs,
        "local_rps": statistics.median(r["rps"] for r in runs["local"]),
        "redis_rps": statistics.median(r["rps"] for r in runs["redis"]),
        "local_cpu_per_10k": statistics.median(
            r["fetchd_cpu_s_per_10k"] for r in runs["local"]),
        "redis_cpu_per_10k": statistics.median(
            r["fetchd_cpu_s_per_10k"] for r in runs["redis"]),
        "rps_ratio": statistics.median(rps_ratio),
        "cpu_ratio": statistics.median(cpu_ratio),
        "redis_calls_per_request": statistics.median(
            r["redis_calls_per_request"] for r in runs["redis"]),
    }
    print(f"  cluster  redis/local: req/s {out['rps_ratio']:.3f}x, fetchd "
          f"CPU per request {out['cpu_ratio']:.3f}x, "
          f"{out['redis_calls_per_request']:.4f} Redis calls/request",
          flush=True)
    return out


def extra_stream(ctx):
    """A 1 GiB body streamed through fetchd by fetchctl get -o /dev/null."""
    args = ctx.args
    fetchd, port = start_fetchd(ctx.tmp, ctx.fetchd_bin, args.workers,
                                "stream")
    try:
        before = rss_kib(fetchd.pid)
        res = run_client([ctx.fetchctl_bin, "--server", f"127.0.0.1:{port}",
                          "get", f"http://127.0.0.1:{ctx.nginx_port}/1g",
                          "-o", "/dev/null"], args.timeout, ctx.tmp,
                         "stream-fetchctl", json_report=False)
        hwm = rss_kib(fetchd.pid, "VmHWM")
    finally:
        fetchd.stop()
    out = {"bytes": STREAM_BYTES, "seconds": res["wall_s"],
           "fetchd_rss_before_mb": before / 1024,
           "fetchd_vm_hwm_mb": hwm / 1024,
           "rss_growth_mb": (hwm - before) / 1024,
           "fetchctl_peak_rss_mb": res["ru_maxrss_kib"] / 1024}
    print(f"  stream   1 GiB in {out['seconds']:.2f} s: fetchd RSS "
          f"{out['fetchd_rss_before_mb']:.0f} MB -> VmHWM "
          f"{out['fetchd_vm_hwm_mb']:.0f} MB (+{out['rss_growth_mb']:.0f} MB)",
          flush=True)
    return out


def extra_unary(ctx):
    """Unary Fetch latency over direct libcurl, sequential requests."""
    args = ctx.args
    n = max(100, int(2000 * args.scale))
    fetchd, port = start_fetchd(ctx.tmp, ctx.fetchd_bin, args.workers,
                                "unary")
    try:
        res = run_client([ctx.unary_bin, "--server", f"127.0.0.1:{port}",
                          "--url", f"http://127.0.0.1:{ctx.nginx_port}/1k",
                          "--requests", str(n)], args.timeout, ctx.tmp,
                         "unary")
    finally:
        fetchd.stop()
    out = res["report"]
    print(f"  unary    {n} sequential: direct p50 {out['direct_p50_us']:.0f} "
          f"us p99 {out['direct_p99_us']:.0f} us; fetchd p50 "
          f"{out['fetchd_p50_us']:.0f} us p99 {out['fetchd_p99_us']:.0f} us; "
          f"added p50 {out['added_p50_us']:.0f} us p99 "
          f"{out['added_p99_us']:.0f} us", flush=True)
    return out


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
    """Per workload and system medians, plus per-round fetchd/peer ratios.

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
            rss = (fetchd_hwm_kib.get(workload) if system == "fetchd"
                   else client_kib)
            per[system] = {
                "median_rps": statistics.median(r["rps"] for r in mine),
                "median_seconds": statistics.median(
                    r["client_reported_s"] for r in mine),
                "median_cpu_s_per_10k": statistics.median(
                    r["cpu_s_per_10k"] for r in mine),
                "median_server_cpu_s_per_10k": statistics.median(
                    r["server_cpu_s_per_10k"] for r in mine),
                "peak_rss_mb": (rss / 1024 if rss else None),
                "client_peak_rss_mb": client_kib / 1024,
                "median_nginx_cpu_s_per_10k": statistics.median(
                    r["nginx_cpu_s"] * 10000 / r["requests"] for r in mine),
                "runs": len(mine),
            }
        by_round = {}
        for r in runs:
            if r["workload"] == workload:
                by_round.setdefault(r["round"], {})[r["system"]] = r
        summary[workload] = {
            "systems": per,
            "fetchd_over": round_ratios(
                by_round, per, "fetchd",
                [p for p in systems if p not in VIA_FETCHD]),
            # fetchd's Python client against the Python peers.
            "python_over": round_ratios(by_round, per, "python",
                                        ["aiohttp", "httpx"]),
            # FetchStream against FetchBatch, same fetchd, same round.
            "stream_over": round_ratios(by_round, per, "stream", ["fetchd"]),
        }
    return summary


def round_ratios(by_round, per, system, peers):
    """system/peer ratios of req/s and CPU per 10k, round by round."""
    ratios = {}
    for peer in peers:
        if system not in per or peer not in per:
            continue
        pairs = [p for p in by_round.values() if system in p and peer in p]
        rps = [p[system]["rps"] / p[peer]["rps"] for p in pairs]
        cpu = [p[system]["cpu_s_per_10k"] / p[peer]["cpu_s_per_10k"]
               for p in pairs]
        ratios[peer] = {}
        for name, values in (("rps", rps), ("cpu_per_10k", cpu)):
            ratios[peer][name] = {"median": statistics.median(values),
                                  "min": min(values), "max": max(values),
                                  "per_round": values}
    return ratios


def targets(summary, extras):
    """Issue 6's targets and issue 17's (the Python client): (name,
    figure, bound, met) for what was measured."""
    out = []

    def ratio(workload, peer, over="fetchd_over", name="rps"):
        r = summary.get(workload, {}).get(over, {}).get(peer)
        return r[name]["median"] if r else None

    def system(workload, name):
        return summary.get(workload, {}).get("systems", {}).get(name)

    for label, value, bound, ge in (
            ("1k req/s, fetchd/raw (median of rounds)", ratio("1k", "raw"),
             0.8, True),
            ("1k req/s, fetchd/aiohttp", ratio("1k", "aiohttp"), 8.0, True),
            ("100k req/s, fetchd/raw", ratio("100k", "raw"), 0.7, True),
            ("1k req/s, python client/aiohttp",
             ratio("1k", "aiohttp", "python_over"), 3.0, True),
            ("1k CPU per request (client + fetchd), python client/aiohttp",
             ratio("1k", "aiohttp", "python_over", "cpu_per_10k"), 1.0,
             False),
            ("1k req/s, FetchStream/FetchBatch",
             ratio("1k", "fetchd", "stream_over"), 0.95, True)):
        if value is not None:
            out.append((label, f"{value:.2f}x",
                        f"{'>=' if ge else '<='} {bound}x",
                        value >= bound if ge else value <= bound))
    d = system("delay", "fetchd")
    if d:
        out.append(("delay: 256 x 200 ms, 256 at once (median batch time)",
                    f"{d['median_seconds']:.3f} s", "<= 0.23 s",
                    d["median_seconds"] <= 0.23))
    f = system("1k", "fetchd")
    if f:
        out.append(("1k: fetchd server CPU per 10k requests",
                    f"{f['median_server_cpu_s_per_10k']:.3f} s", "<= 0.3 s",
                    f["median_server_cpu_s_per_10k"] <= 0.3))
        if f["peak_rss_mb"]:
            out.append(("1k: fetchd peak RSS", f"{f['peak_rss_mb']:.0f} MB",
                        "<= 64 MB", f["peak_rss_mb"] <= 64))
    c = extras.get("c10k")
    if c:
        out.append((f"c10k: fetchd VmHWM, {c['requests']} in flight",
                    f"{c['fetchd_vm_hwm_mb']:.0f} MB", "<= 256 MB",
                    c["fetchd_vm_hwm_mb"] <= 256))
    st = extras.get("stream")
    if st:
        out.append(("stream: fetchd RSS growth, 1 GiB body",
                    f"{st['rss_growth_mb']:.0f} MB", "<= 32 MB",
                    st["rss_growth_mb"] <= 32))
    cl = extras.get("cluster")
    if cl:
        out.append(("cluster: 3 replicas on Redis / LOCAL, req/s (median "
                    "of rounds)", f"{cl['rps_ratio']:.3f}x", ">= 0.9x",
                    cl["rps_ratio"] >= 0.9))
        out.append(("cluster: fetchd CPU per request, Redis / LOCAL",
                    f"{cl['cpu_ratio']:.3f}x", "<= 1.1x",
                    cl["cpu_ratio"] <= 1.1))
        out.append(("cluster: Redis calls per request",
                    f"{cl['redis_calls_per_request']:.4f}", "<= 0.2",
                    cl["redis_calls_per_request"] <= 0.2))
    u = extras.get("unary")
    if u:
        out.append(("unary Fetch added latency p50",
                    f"{u['added_p50_us'] / 1000:.3f} ms", "<= 0.3 ms",
                    u["added_p50_us"] <= 300))
        out.append(("unary Fetch added latency p99",
                    f"{u['added_p99_us'] / 1000:.3f} ms", "<= 1 ms",
                    u["added_p99_us"] <= 1000))
    return out


def markdown(summary, extras, facts, args):
    """The results as Markdown tables, for BENCHMARKS.md."""
    lines = [f"Machine: {facts['nproc']} CPUs ({facts['cpus_usable']} usable)"
             f", {facts['cpu_model']}, kernel {facts['kernel']}; "
             f"{facts['libcurl'].split()[0]}, {facts['nginx']}, Python "
             f"{facts['python']}, aiohttp {facts.get('aiohttp', '?')}, httpx "
             f"{facts.get('httpx', '?')}. {args.rounds} rounds, fetchd with "
             f"{args.workers} workers. Load average at start "
             f"{facts['loadavg_start'][0]:.2f}, at end "
             f"{facts['loadavg_end'][0]:.2f}.", "",
             "| workload | system | req/s (median) | batch s | CPU s / 10k "
             "req (client + fetchd) | fetchd CPU s / 10k | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for workload, entry in summary.items():
        for name, s in entry["systems"].items():
            label = name
            if workload == "h2" and name == "aiohttp":
                label = "aiohttp (HTTP/1.1)"
            rss = (f"{s['peak_rss_mb']:.0f}" if s["peak_rss_mb"] else "n/a")
            if name == "fetchd":
                rss += f" (client {s['client_peak_rss_mb']:.0f})"
            server = (f"{s['median_server_cpu_s_per_10k']:.3f}"
                      if name in VIA_FETCHD else "")
            lines.append(f"| {workload} | {label} | {s['median_rps']:,.0f} | "
                         f"{s['median_seconds']:.3f} | "
                         f"{s['median_cpu_s_per_10k']:.3f} | {server} | "
                         f"{rss} |")
    lines += ["", "fetchd / peer and python / peer, req/s per round:", "",
              "| workload | ratio | median | min | max |",
              "|---|---|---|---|---|"]
    for workload, entry in summary.items():
        for over in ("fetchd", "python", "stream"):
            for peer, r in entry[f"{over}_over"].items():
                x = r["rps"]
                lines.append(f"| {workload} | {over}/{peer} | "
                             f"{x['median']:.2f} | {x['min']:.2f} | "
                             f"{x['max']:.2f} |")
    t = targets(summary, extras)
    if t:
        lines += ["", "| target | measured | bound | met |",
                  "|---|---|---|---|"]
        lines += [f"| {n} | {v} | {b} | {'yes' if ok else '**no**'} |"
                  for n, v, b, ok in t]
    return "\n".join(lines) + "\n"


def print_table(summary, extras, facts, args):
    print()
    header = (f"{'workload':8s} {'system':8s} {'req/s':>9s} {'batch s':>8s} "
              f"{'CPU s/10k':>10s} {'fetchd CPU':>10s} {'peak RSS MB':>12s} "
              f"{'client RSS MB':>14s} {'nginx CPU s/10k':>16s}")
    print(header)
    print("-" * len(header))
    for workload, entry in summary.items():
        for system, s in entry["systems"].items():
            rss = (f"{s['peak_rss_mb']:.1f}" if s["peak_rss_mb"] is not None
                   else "n/a")
            client_rss = (f"{s['client_peak_rss_mb']:.1f}"
                          if system == "fetchd" else "")
            server = (f"{s['median_server_cpu_s_per_10k']:10.3f}"
                      if system in VIA_FETCHD else " " * 10)
            print(f"{workload:8s} {system:8s} {s['median_rps']:9.0f} "
                  f"{s['median_seconds']:8.3f} "
                  f"{s['median_cpu_s_per_10k']:10.3f} {server} {rss:>12s} "
                  f"{client_rss:>14s} "
                  f"{s['median_nginx_cpu_s_per_10k']:16.3f}")
        for over in ("fetchd", "python", "stream"):
            for peer, r in entry[f"{over}_over"].items():
                for name, label in (("rps", "req/s"), ("cpu_per_10k", "CPU")):
                    x = r[name]
                    print(f"{workload:8s} {over}/{peer:7s} {label:5s} "
                          f"median {x['median']:.3f}  min {x['min']:.3f}  "
                          f"max {x['max']:.3f}")
    print()
    for name, value, bound, ok in targets(summary, extras):
        print(f"target  {'met ' if ok else 'MISS'}  {name}: {value} "
              f"(bound {bound})")
    print()
    print("CPU s/10k: client CPU, plus fetchd's server CPU for fetchd and "
          "python.")
    print("peak RSS: fetchd = server VmHWM (its load client's VmHWM under "
          "client RSS); the others = client VmHWM.")
    print(f"machine: {facts['nproc']} CPUs ({facts['cpus_usable']} usable), "
          f"{facts['cpu_model']}, kernel {facts['kernel']}")
    print(f"         libcurl: {facts['libcurl']}")
    print(f"         {facts['nginx']}; aiohttp {facts.get('aiohttp')}, httpx "
          f"{facts.get('httpx')}; nginx, fetchd and the client share the "
          "machine")
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


def csv_choices(allowed, what):
    def parse(text):
        items = [x for x in text.split(",") if x]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"{what}: {','.join(bad) or 'none'} not in "
                f"{','.join(allowed)}")
        return items
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="fetchd vs raw libcurl multi, aiohttp and httpx")
    p.add_argument("--build", default="./build",
                   help="CMake build dir with bench/ and service/fetchd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies every workload's request count")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS),
                   help="repeat for several (default: all)")
    p.add_argument("--systems", type=csv_choices(SYSTEMS, "--systems"),
                   default=list(SYSTEMS), help="comma-separated")
    p.add_argument("--extras", type=csv_choices(EXTRAS + ("none",),
                                                 "--extras"),
                   default=list(EXTRAS),
                   help="comma-separated, or none")
    p.add_argument("--batch-size", type=int, default=0,
                   help="fetchd_load --batch_size (0: one batch)")
    p.add_argument("--warmup", type=int, default=2000,
                   help="requests of an unrecorded warm-up run per system "
                   "and workload (0: none; capped at the workload's size)")
    p.add_argument("--workers", type=int, default=2, help="fetchd workers")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed per client run")
    p.add_argument("--nginx", default=shutil.which("nginx") or
                   "/usr/sbin/nginx")
    p.add_argument("--json", metavar="OUT", help="write raw numbers here")
    p.add_argument("--markdown", metavar="OUT",
                   help="write the tables (Markdown) here")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    args.workload = args.workload or list(WORKLOADS)
    args.extras = [x for x in args.extras if x != "none"]
    if args.rounds < 1 or args.scale <= 0:
        p.error("--rounds and --scale must be positive")
    return args


def raise_fd_limit():
    """c10k needs >10,000 sockets in fetchd, nginx and the clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (max(soft, want), max(hard, want)))
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def python_lib_version(name):
    out = subprocess.run([PY, "-c", f"import {name}; print({name}.__version__)"],
                         capture_output=True, env=child_env(), timeout=60)
    return out.stdout.decode().strip() or "missing"


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    raise_fd_limit()
    systems = args.systems
    build = os.path.abspath(args.build)
    ctx = Context()
    ctx.args = args
    ctx.raw_bin = os.path.join(build, "bench", "raw_curl_multi")
    ctx.load_bin = os.path.join(build, "bench", "fetchd_load")
    ctx.unary_bin = os.path.join(build, "bench", "unary_latency")
    ctx.fetchctl_bin = os.path.join(build, "client", "fetchctl")
    ctx.fetchd_bin = os.path.join(build, "service", "fetchd")
    ctx.python_site = os.path.join(build, "client", "python", "site")
    needed = [ctx.raw_bin, ctx.load_bin, ctx.fetchd_bin]
    if "unary" in args.extras:
        needed.append(ctx.unary_bin)
    if "stream" in args.extras:
        needed.append(ctx.fetchctl_bin)
    for path in needed:
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} not found; build it (cmake --build "
                             f"{args.build} --target "
                             f"{os.path.basename(path)})")
    if "python" in systems and not os.path.isfile(
            os.path.join(ctx.python_site, "fetchd", "_proto", "fetch_pb2.py")):
        raise BenchError(f"{ctx.python_site} has no fetchd package; build "
                         f"it (cmake --build {args.build} --target "
                         "fetchd_python)")
    ctx.tmp = tempfile.mkdtemp(prefix="peer_bench.")
    ctx.nginx = ctx.fetchd = None
    failed = True
    try:
        (ctx.nginx, ctx.nginx_port, ctx.nginx_tls_port,
         ctx.ca) = start_nginx(ctx.tmp, args.nginx)
        print(f"nginx pid {ctx.nginx.pid} on 127.0.0.1:{ctx.nginx_port} "
              f"(TLS+h2 on {ctx.nginx_tls_port})", flush=True)
        facts = machine_facts(args.nginx)
        facts["aiohttp"] = python_lib_version("aiohttp")
        facts["httpx"] = python_lib_version("httpx")
        runs = []
        fetchd_hwm = {}
        for workload in args.workload:
            # A fresh fetchd per workload, so that its VmHWM is this one's.
            if any(system in VIA_FETCHD for system in systems):
                ctx.fetchd, ctx.fetchd_port = start_fetchd(
                    ctx.tmp, ctx.fetchd_bin, args.workers, workload)
                print(f"fetchd pid {ctx.fetchd.pid} on "
                      f"127.0.0.1:{ctx.fetchd_port}", flush=True)
            n = workload_spec(workload, args.scale)[3]
            if args.warmup:
                for system in systems:
                    one_run(system, ctx, workload, -1,
                            min(args.warmup, n))
            for round_no in range(args.rounds):
                k = round_no % len(systems)
                for system in systems[k:] + systems[:k]:
                    ctx.nginx.check_alive()
                    if ctx.fetchd:
                        ctx.fetchd.check_alive()
                    runs.append(one_run(system, ctx, workload, round_no))
            if ctx.fetchd:
                fetchd_hwm[workload] = proc_status_kib(ctx.fetchd.pid,
                                                       "VmHWM")
                ctx.fetchd.stop()
                ctx.fetchd = None
        extras = {}
        for name in args.extras:
            extras[name] = {"c10k": extra_c10k, "stream": extra_stream,
                            "unary": extra_unary,
                            "cluster": extra_cluster}[name](ctx)
        facts["loadavg_end"] = os.getloadavg()
        summary = summarize(runs, systems, args.workload, fetchd_hwm)
        print_table(summary, extras, facts, args)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown(summary, extras, facts, args))
            print(f"tables written to {args.markdown}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "machine": facts,
                           "fetchd_vm_hwm_kib_by_workload": fetchd_hwm,
                           "runs": runs, "summary": summary,
                           "extras": extras}, f, indent=2)
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
