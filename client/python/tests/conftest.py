"""Fixtures of the Python client's tests: the real fetchd binary, the local
targets (target_server.py, a child process), and test certificates made
with the openssl CLI.

FETCHD_BIN names the fetchd binary (ctest sets it); without it the tests
look for build/service/fetchd. PYTHONPATH must reach the staged package
(build/client/python/site, the fetchd_python target), or fetchd must be
pip-installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import pytest

import fetchd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
START_TIMEOUT_S = 30.0
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
              "NO_PROXY")


def child_env() -> Dict[str, str]:
    """The environment without proxy settings: everything is loopback."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    return env


# gRPC in this process must not go through a proxy either.
for _var in PROXY_VARS:
    os.environ.pop(_var, None)


def wait_for_file(path: str, proc: subprocess.Popen, what: str,
                  complete=lambda text: text.endswith("\n")) -> str:
    """The content of `path` once another process has written it; that
    process is polled, briefly and boundedly."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text and complete(text):
                return text
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    raise RuntimeError(f"{what} did not start (exit {proc.poll()}):\n{out}")


def fetchd_binary() -> str:
    path = os.environ.get("FETCHD_BIN") or os.path.join(
        REPO, "build", "service", "fetchd")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"fetchd binary {path} not found: build it "
                           "(cmake --build build --target fetchd) or set "
                           "FETCHD_BIN")
    return path


class Fetchd:
    """A fetchd child on 127.0.0.1 port 0 with its metrics on port 0."""

    def __init__(self, flags: List[str], tmp: str) -> None:
        os.makedirs(tmp, exist_ok=True)
        port_file = os.path.join(tmp, "port")
        metrics_file = os.path.join(tmp, "metrics_port")
        for f in (port_file, metrics_file):
            if os.path.exists(f):
                os.remove(f)
        argv = [fetchd_binary(), "--listen=127.0.0.1:0",
                f"--port_file={port_file}", "--metrics_listen=127.0.0.1:0",
                f"--metrics_port_file={metrics_file}", "--workers=2",
                "--log_level=warn", "--drain_seconds=1"]
        # fetchd refuses loopback targets by default; ours are there.
        if not any(f.startswith("--policy_allow") for f in flags):
            argv.append("--policy_allow=127.0.0.0/8")
        argv.extend(flags)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env=child_env())
        port = wait_for_file(port_file, self.proc, "fetchd").strip()
        mport = wait_for_file(metrics_file, self.proc, "fetchd metrics")
        self.address = f"127.0.0.1:{port}"
        self.metrics_url = f"http://127.0.0.1:{mport.strip()}/metrics"

    def metric(self, name: str) -> float:
        """The sum of every series of `name` on fetchd's /metrics."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.metrics_url, timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        found = False
        for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$",
                             text, re.MULTILINE):
            total += float(m.group(1))
            found = True
        if not found:
            raise KeyError(f"{name} not in fetchd's /metrics")
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@dataclass
class Pki:
    dir: str
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str


def make_pki(d: str) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, a client
    certificate (identity "client-a") and an unrelated CA, by openssl."""

    def openssl(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True,
                       env=child_env(), timeout=60)

    def key_and_csr(name: str, cn: str) -> None:
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr",
                "-subj", f"/CN={cn}")

    def sign(name: str, ext: str) -> None:
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA",
                f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
                "-out", f"{d}/{name}.pem", "-days", "2",
                "-extfile", f"{d}/{name}.ext")

    for ca in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.pem",
                "-days", "2", "-subj", f"/CN=fetchd python test {ca}")
    key_and_csr("server", "127.0.0.1")
    sign("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    key_and_csr("client", "client-a")
    sign("client", "subjectAltName=DNS:client-a\n"
                   "extendedKeyUsage=clientAuth\n")
    return Pki(d, f"{d}/ca.pem", f"{d}/server.pem", f"{d}/server.key",
               f"{d}/client.pem", f"{d}/client.key", f"{d}/other_ca.pem")


@dataclass
class Targets:
    http: str      # http://127.0.0.1:PORT
    https: str     # https://127.0.0.1:PORT (certificate from pki.ca)
    ws: str        # ws://127.0.0.1:PORT
    refused: str   # http://127.0.0.1:PORT where nothing listens


@pytest.fixture(scope="session")
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fetchd-pytest.") as d:
        yield d


@pytest.fixture(scope="session")
def pki(workdir: str) -> Pki:
    d = os.path.join(workdir, "pki")
    os.makedirs(d)
    return make_pki(d)


@pytest.fixture(scope="session")
def targets(workdir: str, pki: Pki) -> Iterator[Targets]:
    port_file = os.path.join(workdir, "targets.json")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "target_server.py"),
         "--port-file", port_file, "--tls-cert", pki.server_cert,
         "--tls-key", pki.server_key],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env())
    ports = json.loads(wait_for_file(port_file, proc, "target_server",
                                     complete=lambda t: t.endswith("}")))
    # Bound but not listening: connections to it are refused, and no other
    # process can take the port meanwhile.
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    try:
        yield Targets(f"http://127.0.0.1:{ports['http']}",
                      f"https://127.0.0.1:{ports['https']}",
                      f"ws://127.0.0.1:{ports['http']}",
                      f"http://127.0.0.1:{refused.getsockname()[1]}")
    finally:
        refused.close()
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="session")
def start_fetchd(workdir: str) -> Iterator:
    """start_fetchd(*flags) -> Fetchd, stopped at the end of the session
    (or by the test)."""
    started: List[Fetchd] = []

    def start(*flags: str) -> Fetchd:
        f = Fetchd(list(flags), os.path.join(workdir,
                                             f"fetchd-{len(started)}"))
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


@pytest.fixture(scope="session")
def server(start_fetchd) -> Fetchd:
    """The shared fetchd of most tests: defaults, loopback allowed."""
    return start_fetchd()


@pytest.fixture
async def client(server: Fetchd):
    async with fetchd.Client(server.address) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for_metric(server: Fetchd, name: str, want: float,
                          timeout: float = 10.0) -> float:
    """Polls fetchd's /metrics (another process) until `name` is `want`;
    returns the last value read."""
    import asyncio
    deadline = time.monotonic() + timeout
    value: Optional[float] = None
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(server.metric, name)
        if value == want:
            return value
        await asyncio.sleep(0.05)
    return value if value is not None else float("nan")
