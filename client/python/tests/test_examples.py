"""Each example in client/python/examples/, run as a script against the
real fetchd and the local targets, its output checked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from conftest import HERE, child_env

EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


def run(name, *args, stdin=None):
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, name),
                           *args], input=stdin, capture_output=True,
                          text=True, env=child_env(), timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_scrape_titles(server, targets):
    urls = [f"{targets.http}/html/{i}" for i in range(40)]
    urls += [f"{targets.refused}/", f"{targets.http}/status/500"]
    code, out, err = run("scrape_titles.py", "--server", server.address,
                         stdin="\n".join(urls) + "\n")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 42
    for i in range(40):
        assert lines[i] == f"{targets.http}/html/{i}\tPage {i}"
    assert lines[40].startswith(f"{targets.refused}/\terror: CONNECT")
    assert lines[41] == f"{targets.http}/status/500\terror: HTTP 500"


def test_json_api_with_retries_and_timeout(server, targets):
    code, out, err = run("json_api.py", "--server", server.address,
                         "--api", f"{targets.http}/api", "--ids", "1-20",
                         "--timeout", "0.5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == "19 ok, 1 failed"
    rows = {r["id"]: r for r in map(json.loads, lines[:-1])}
    assert sorted(rows) == list(range(1, 21))
    for i in (5, 10, 15, 20):  # 503 at first: retried
        assert rows[i]["user"] == {"id": i, "name": f"user{i}"}
        assert rows[i]["attempts"] == 2
    assert rows[13]["error"].startswith("TOTAL_TIMEOUT")
    assert rows[1]["attempts"] == 1


def test_download_with_progress(server, targets, tmp_path):
    n = 20 << 20
    path = str(tmp_path / "big.bin")
    code, out, err = run("download.py", "--server", server.address,
                         f"{targets.http}/bytes?n={n}", path)
    assert code == 0, err
    assert out.strip() == f"{path}: {n} bytes"
    assert "100%" in err  # tqdm's bar, on stderr
    pattern = bytes(range(256)) * 256
    with open(path, "rb") as f:
        data = f.read()
    assert hashlib.sha256(data).digest() == \
        hashlib.sha256(pattern * (n // len(pattern))).digest()
    code, _, err = run("download.py", "--server", server.address, "--quiet",
                       f"{targets.refused}/x", path)
    assert code == 1 and "CONNECT" in err


def test_ws_echo(server, targets):
    code, out, err = run("ws_echo.py", "--server", server.address,
                         f"{targets.ws}/ws", "hello", "world")
    assert code == 0, err
    assert out.splitlines() == ["hello", "world", "closed 1000"]
    code, _, err = run("ws_echo.py", "--server", server.address,
                       f"{targets.ws}/ok", "x")
    assert code == 1 and "HTTP_STATUS" in err
