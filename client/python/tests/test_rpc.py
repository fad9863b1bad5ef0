"""RPC-level failures mapped to the documented exceptions, a secured fetchd
(TLS, mTLS, bearer tokens), and the synchronous facade."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

import fetchd
from conftest import HERE, child_env, free_port

# fetchd wants tokens of 16 characters or more.
TOKEN = "s3cret-token-0123456789"


async def test_fetchd_down_is_unavailable(targets):
    async with fetchd.Client(f"127.0.0.1:{free_port()}") as c:
        with pytest.raises(fetchd.FetchdUnavailable) as e:
            await c.get(f"{targets.http}/ok")
        assert isinstance(e.value, fetchd.FetchdError)
        with pytest.raises(fetchd.FetchdUnavailable):
            async for _ in c.fetch_many([f"{targets.http}/ok"]):
                pass
        with pytest.raises(fetchd.FetchdUnavailable):
            async with c.stream(f"{targets.http}/ok"):
                pass
        with pytest.raises(fetchd.FetchdUnavailable):
            await c.ws_connect(f"{targets.ws}/ws")


async def test_overloaded_carries_retry_after(start_fetchd, targets):
    small = start_fetchd("--max_pending=10", "--max_batch_size=10")
    slow = [f"{targets.http}/slow?ms=3000&i={i}" for i in range(10)]
    async with fetchd.Client(small.address) as c:

        async def hold():
            async for _ in c.fetch_many(slow, concurrency=10):
                pass

        holder = asyncio.create_task(hold())
        # fetchd admits the first batch before it answers anything; wait
        # until it counts it, then a second call is over max_pending.
        from conftest import wait_for_metric
        assert await wait_for_metric(small, "fetch_pending_requests",
                                     10) == 10
        with pytest.raises(fetchd.FetchdOverloaded) as e:
            await c.get(f"{targets.http}/ok")
        assert e.value.retry_after is not None and e.value.retry_after > 0
        with pytest.raises(fetchd.FetchdOverloaded):
            async for _ in c.fetch_many([f"{targets.http}/ok"]):
                pass
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder


async def test_invalid_batch_is_invalid_argument(client, targets):
    with pytest.raises(fetchd.FetchdInvalidArgument):
        async for _ in client.fetch_many([f"{targets.http}/ok"],
                                         timeout=100000):
            pass


@pytest.fixture(scope="module")
def secured(start_fetchd, pki, workdir):
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write(f"# name token\nteam-a {TOKEN}\n")
    return start_fetchd(f"--tls_cert_file={pki.server_cert}",
                        f"--tls_key_file={pki.server_key}",
                        f"--client_ca_file={pki.ca}",
                        "--require_client_cert",
                        f"--token_file={tokens}")


async def test_mtls_and_token(secured, pki, targets):
    tls = fetchd.ChannelTLS(ca=pki.ca, cert=pki.client_cert,
                            key=pki.client_key)
    async with fetchd.Client(secured.address, tls=tls,
                             token=TOKEN) as c:
        r = await c.get(f"{targets.http}/ok")
        assert r.ok
        got = [r async for r in c.fetch_many([f"{targets.http}/ok"] * 3)]
        assert len(got) == 3 and all(r.ok for r in got)
        async with c.ws_connect(f"{targets.ws}/ws") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str() == "hi"
    # PEM bytes work as well as paths, and the name checked in the
    # certificate can be overridden (the address stays 127.0.0.1: tests
    # never resolve a name).
    with open(pki.ca, "rb") as f:
        ca = f.read()
    async with fetchd.Client(secured.address,
                             tls=fetchd.ChannelTLS(
                                 ca=ca, cert=pki.client_cert,
                                 key=pki.client_key, server_name="localhost"),
                             token=TOKEN) as c:
        assert (await c.get(f"{targets.http}/ok")).ok


async def test_bad_or_missing_token_is_unauthenticated(secured, pki, targets):
    tls = fetchd.ChannelTLS(ca=pki.ca, cert=pki.client_cert,
                            key=pki.client_key)
    async with fetchd.Client(secured.address, tls=tls, token="x" + TOKEN) as c:
        with pytest.raises(fetchd.FetchdUnauthenticated):
            await c.get(f"{targets.http}/ok")
        with pytest.raises(fetchd.FetchdUnauthenticated):
            async for _ in c.fetch_many([f"{targets.http}/ok"]):
                pass


async def test_tls_failures_are_unavailable(secured, pki, targets):
    # No client certificate: the mTLS handshake fails.
    async with fetchd.Client(secured.address, tls=fetchd.ChannelTLS(
            ca=pki.ca), token=TOKEN) as c:
        with pytest.raises(fetchd.FetchdUnavailable):
            await c.get(f"{targets.http}/ok")
    # A CA that didn't sign fetchd's certificate.
    async with fetchd.Client(secured.address, tls=fetchd.ChannelTLS(
            ca=pki.other_ca, cert=pki.client_cert, key=pki.client_key),
            token=TOKEN) as c:
        with pytest.raises(fetchd.FetchdUnavailable):
            await c.get(f"{targets.http}/ok")
    # Plaintext to a TLS endpoint.
    async with fetchd.Client(secured.address, token=TOKEN) as c:
        with pytest.raises(fetchd.FetchdUnavailable):
            await c.get(f"{targets.http}/ok")


def test_sync_client(server, targets, tmp_path):
    with fetchd.SyncClient(server.address, timeout=10) as c:
        r = c.get(f"{targets.http}/json")
        assert r.json() == {"hello": "fetchd"}
        assert c.post(f"{targets.http}/echo", json=[1]).json()["body"] == "[1]"
        urls = [f"{targets.http}/ok?i={i}" for i in range(100)]
        results = list(c.fetch_many(urls, concurrency=8, ordered=True))
        assert [r.index for r in results] == list(range(100))
        assert all(r.ok for r in results)
        for r in c.fetch_many(urls):
            break  # leaving early closes the batch
        with c.stream(f"{targets.http}/bytes?n=300000") as s:
            assert s.status == 200
            assert sum(len(b) for b in s.iter_chunked(50000)) == 300000
        with c.stream(f"{targets.http}/bytes?n=1000") as s:
            assert s.save(tmp_path / "x") == 1000
    with fetchd.SyncClient(f"127.0.0.1:{free_port()}") as c:
        with pytest.raises(fetchd.FetchdUnavailable):
            c.get(f"{targets.http}/ok")


def test_pip_installs_offline(tmp_path):
    """pip install --no-build-isolation into a --system-site-packages
    venv, with Debian's setuptools, grpcio and protobuf: no index."""
    venv = tmp_path / "venv"
    env = child_env()
    env.pop("PYTHONPATH", None)
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(["/usr/bin/python3", "-m", "venv",
                    "--system-site-packages", str(venv)], check=True,
                   env=env, timeout=120)
    src = os.path.dirname(HERE)
    # Build from a copy, so that the source tree gets no build/ or egg-info.
    subprocess.run(["cp", "-r", src, str(tmp_path / "python")], check=True)
    subprocess.run(["rm", "-rf", str(tmp_path / "python" / "tests")],
                   check=True)
    env["FETCHD_PROTO_DIR"] = os.path.join(src, "..", "..", "proto")
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-build-isolation",
         str(tmp_path / "python")], env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import fetchd, os, fetchd._proto.fetch_pb2 as p;"
         "d = os.path.dirname(fetchd.__file__);"
         "print(fetchd.Client.__name__, p.DESCRIPTOR.name,"
         " os.path.exists(os.path.join(d, 'py.typed')))"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True,
        timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["Client", "fetch/v1/fetch.proto", "True"]
    assert "site-packages" in subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import fetchd; print(fetchd.__file__)"], env=env, cwd=str(tmp_path),
        capture_output=True, text=True, timeout=60).stdout
