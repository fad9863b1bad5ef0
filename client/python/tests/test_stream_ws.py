"""Streamed bodies (bounded client memory, save(), failures) and WebSockets
through fetchd's bridge."""

from __future__ import annotations

import hashlib
import resource

import pytest

import fetchd

PATTERN = bytes(range(256)) * 256  # target_server's body pattern, 64 KiB


def expected_digest(n: int) -> str:
    h = hashlib.sha256()
    left = n
    while left > 0:
        piece = PATTERN[:min(left, len(PATTERN))]
        h.update(piece)
        left -= len(piece)
    return h.hexdigest()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


async def test_stream_100mb_in_bounded_memory(client, targets):
    n = 100 << 20
    before = rss_bytes()
    peak = before
    h = hashlib.sha256()
    total = 0
    async with client.stream(f"{targets.http}/bytes?n={n}") as resp:
        assert resp.status == 200 and resp.ok
        assert resp.content_length == n
        assert resp.headers["content-type"] == "application/octet-stream"
        async for chunk in resp.iter_chunked(100_000):
            assert len(chunk) <= 100_000
            h.update(chunk)
            total += len(chunk)
            peak = max(peak, rss_bytes())
        assert resp.complete and resp.error is None
        assert resp.attempts == 1 and resp.bytes_received == n
    assert total == n
    assert h.hexdigest() == expected_digest(n)
    # The whole body would be 100 MB; what is held at once is a few chunks
    # and gRPC's flow-control window.
    assert peak - before < 40 << 20, f"RSS grew {(peak - before) >> 20} MB"


async def test_stream_save_and_read(client, targets, tmp_path):
    path = tmp_path / "body.bin"
    async with client.stream(f"{targets.http}/bytes?n=3000000",
                             chunk_size=65536) as resp:
        assert await resp.save(path) == 3_000_000
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == \
            expected_digest(3_000_000)
    async with client.stream(f"{targets.http}/json") as resp:
        assert await resp.read() == b'{"hello": "fetchd"}'
    async with client.stream(f"{targets.http}/echo", "POST",
                             json={"x": 1}) as resp:
        assert '"method": "POST"' in await resp.text()


async def test_stream_failure_before_the_head_is_data(client, targets):
    async with client.stream(f"{targets.refused}/", retries=0) as resp:
        assert resp.error.kind is fetchd.ErrorKind.CONNECT
        assert resp.status == 0 and not resp.ok
        assert await resp.read() == b""
        with pytest.raises(fetchd.ResponseError):
            resp.raise_for_status()


async def test_stream_that_breaks_off_raises_payload_error(client, targets):
    async with client.stream(f"{targets.http}/stall", retries=0,
                             timeout=fetchd.Timeout(read=0.3)) as resp:
        assert resp.status == 200
        with pytest.raises(fetchd.PayloadError) as e:
            await resp.read()
        assert e.value.kind is fetchd.ErrorKind.READ_TIMEOUT
        assert resp.error.kind is fetchd.ErrorKind.READ_TIMEOUT


async def test_stream_left_early_cancels(client, server, targets):
    from conftest import wait_for_metric
    async with client.stream(f"{targets.http}/bytes?n={1 << 30}") as resp:
        async for _ in resp.iter_any():
            break
    assert await wait_for_metric(server, "fetch_in_flight_transfers", 0) == 0


async def test_websocket_echo(client, targets):
    async with client.ws_connect(f"{targets.ws}/ws",
                                 headers={"X-Room": "7"}) as ws:
        assert ws.status == 101 and not ws.closed
        await ws.send_str("hello")
        msg = await ws.receive()
        assert msg.type is fetchd.WSMsgType.TEXT and msg.data == "hello"
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive_bytes() == b"\x00\x01"
        await ws.send_json({"a": 1})
        assert await ws.receive_json() == {"a": 1}
        for i in range(3):
            await ws.send_str(f"m{i}")
        got = []
        async for msg in ws:
            got.append(msg.data)
            if len(got) == 3:
                break
        assert got == ["m0", "m1", "m2"]
        assert await ws.close() is True
        assert ws.closed and ws.close_code == 1000
        assert ws.close_initiator == "client"
        assert (await ws.receive()).type is fetchd.WSMsgType.CLOSED


async def test_websocket_closed_by_the_target(client, targets):
    ws = await client.ws_connect(f"{targets.ws}/ws")
    await ws.send_str("close")
    msgs = [m async for m in ws]
    assert msgs == []
    assert ws.closed and ws.close_code == 4000 and ws.close_reason == "asked"
    assert ws.close_initiator == "target"
    assert await ws.close() is False


async def test_websocket_handshake_failure_raises(client, targets):
    with pytest.raises(fetchd.WSHandshakeError) as e:
        async with client.ws_connect(f"{targets.ws}/ok"):
            pass
    assert e.value.kind is fetchd.ErrorKind.HTTP_STATUS
    assert e.value.status == 200
    with pytest.raises(fetchd.WSHandshakeError) as e:
        await client.ws_connect("ws://10.9.9.9/")
    assert e.value.kind is fetchd.ErrorKind.DENIED


async def test_websocket_left_by_exception_is_closed_by_fetchd(
        client, server, targets):
    from conftest import wait_for_metric
    with pytest.raises(RuntimeError):
        async with client.ws_connect(f"{targets.ws}/ws") as ws:
            await ws.send_str("x")
            assert await ws.receive_str() == "x"
            raise RuntimeError("boom")
    assert await wait_for_metric(server, "fetch_websockets_open", 0) == 0
