"""fetch_many(): one result per input whatever happens, ordered mode,
fail_fast, batching, async inputs and cancellation (fetchd's in-flight
count back to 0, read from its /metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

import fetchd
from conftest import wait_for_metric


async def test_2000_urls_mixed_one_result_each(client, targets):
    """ok, HTTP 404, refused, denied, invalid and timed-out URLs in one
    call: exactly one result per input, each with the right outcome."""
    want = {}
    inputs = []
    for i in range(2000):
        k = i % 10
        if k < 5:
            inputs.append(f"{targets.http}/ok?i={i}")
            want[i] = ("ok", 200)
        elif k == 5:
            inputs.append(f"{targets.http}/status/404?i={i}")
            want[i] = ("status", 404)
        elif k == 6:
            inputs.append(fetchd.Request(f"{targets.refused}/?i={i}",
                                         retries=0, id=f"refused-{i}"))
            want[i] = ("error", fetchd.ErrorKind.CONNECT)
        elif k == 7:
            inputs.append(f"http://10.0.0.{i % 250 + 1}/?i={i}")
            want[i] = ("error", fetchd.ErrorKind.DENIED)
        elif k == 8:
            inputs.append(fetchd.Request(f"{targets.http}/ok?i={i}",
                                         headers={"X": "bad\nvalue"}))
            want[i] = ("error", fetchd.ErrorKind.INVALID_REQUEST)
        else:
            inputs.append(fetchd.Request(f"{targets.http}/slow?ms=2000&i={i}",
                                         timeout=0.05, retries=0))
            want[i] = ("error", fetchd.ErrorKind.TOTAL_TIMEOUT)

    seen = {}
    async for r in client.fetch_many(inputs, concurrency=64):
        assert r.index not in seen, f"index {r.index} twice"
        seen[r.index] = r
    assert sorted(seen) == list(range(2000))
    for i, r in seen.items():
        what, value = want[i]
        assert r.url == (inputs[i] if isinstance(inputs[i], str)
                         else inputs[i].url)
        if what == "ok":
            assert r.ok and r.status == 200 and r.content == b"ok", r
        elif what == "status":
            assert r.error is None and r.status == value and not r.ok, r
        else:
            assert r.error is not None and r.error.kind is value, (i, r)
    assert seen[6].id == "refused-6"


async def test_ordered_gives_input_order(client, targets):
    urls = [f"{targets.http}/slow?ms={(7 * i) % 50}&i={i}" for i in range(60)]
    indices = [r.index async for r in client.fetch_many(urls, ordered=True,
                                                        concurrency=16)]
    assert indices == list(range(60))


async def test_unordered_gives_completion_order(client, targets):
    urls = [f"{targets.http}/slow?ms=800", f"{targets.http}/ok"]
    indices = [r.index async for r in client.fetch_many(urls)]
    assert indices == [1, 0]


async def test_fail_fast_cancels_the_rest(client, targets):
    # All in flight at once (fetchd does not promise which of a batch
    # starts first), the slow ones far slower than the test.
    urls = [f"{targets.refused}/"] + \
        [f"{targets.http}/slow?ms=60000&i={i}" for i in range(20)]
    results = [r async for r in client.fetch_many(
        urls, fail_fast=True, concurrency=21, retries=0)]
    assert len(results) == 21
    by_index = {r.index: r for r in results}
    assert by_index[0].error is not None, (by_index[0], by_index[0].raw)
    assert by_index[0].error.kind is fetchd.ErrorKind.CONNECT
    cancelled = [r for r in results if r.index > 0]
    assert all(r.error.kind is fetchd.ErrorKind.CANCELLED
               for r in cancelled), cancelled


async def test_fail_fast_reads_no_further_input(client, targets):
    """An async input streams; after the first failure fetchd reads none of
    what the producer yields later."""
    failed = asyncio.Event()

    async def inputs():
        for i in range(5):
            yield (f"{targets.refused}/" if i == 2
                   else f"{targets.http}/slow?ms=60000&i={i}")
        await asyncio.wait_for(failed.wait(), 10)
        for i in range(5, 50):
            yield f"{targets.http}/ok?i={i}"

    results = []
    async for r in client.fetch_many(inputs(), fail_fast=True, retries=0,
                                     concurrency=5):
        results.append(r)
        if r.error is not None and r.error.kind is fetchd.ErrorKind.CONNECT:
            failed.set()
    assert sorted(r.index for r in results) == list(range(5))
    kinds = {r.index: r.error.kind for r in results}
    assert kinds[2] is fetchd.ErrorKind.CONNECT
    assert all(kinds[i] is fetchd.ErrorKind.CANCELLED for i in (0, 1, 3, 4))


async def test_a_result_arrives_before_the_input_ends(client, targets):
    """A producer that waits for the first result before it yields the
    second URL: FetchStream, not a batch gathered first."""
    first = asyncio.Event()

    async def inputs():
        yield f"{targets.http}/ok?i=0"
        await asyncio.wait_for(first.wait(), 10)
        yield f"{targets.http}/ok?i=1"

    got = []
    async for r in client.fetch_many(inputs()):
        got.append((r.index, r.status))
        first.set()
    assert got == [(0, 200), (1, 200)]


async def test_a_generator_larger_than_a_batch_streams(client, targets):
    # More than fetchd's default max_batch_size (10,000).
    n = 10500
    urls = (f"{targets.http}/ok?i={i}" for i in range(n))
    seen = set()
    async for r in client.fetch_many(urls, concurrency=64):
        assert r.ok and r.url.endswith(f"i={r.index}"), r
        assert r.index not in seen
        seen.add(r.index)
    assert len(seen) == n


async def test_defaults_apply_to_every_request(client, targets):
    reqs = [f"{targets.http}/echo?i={i}" for i in range(3)]
    reqs.append(fetchd.Request(f"{targets.http}/echo?own", method="POST",
                               headers={"X-Own": "1"}, json={"a": 1}))
    out = {}
    async for r in client.fetch_many(reqs, headers={"X-Batch": "b"},
                                     params={"d": "1"}):
        out[r.index] = r.json()
    for i in range(4):
        assert ["X-Batch", "b"] in out[i]["headers"]
        assert ["d", "1"] in out[i]["query"]
    assert out[3]["method"] == "POST" and out[3]["body"] == '{"a":1}'
    assert ["X-Own", "1"] in out[3]["headers"]


async def test_cookies_shared_within_a_batch(client, targets):
    urls = [f"{targets.http}/cookie/set", f"{targets.http}/cookie/get"]
    got = [r async for r in client.fetch_many(urls, ordered=True,
                                              concurrency=1)]
    assert got[1].text() == "session=abc"
    assert got[0].set_cookies[0].startswith("session=abc")
    got = [r async for r in client.fetch_many(
        [f"{targets.http}/cookie/get"], cookies={"seed": "1"})]
    assert got[0].text() == "seed=1"


async def test_queue_timeout(client, targets):
    urls = [f"{targets.http}/slow?ms=1000", f"{targets.http}/slow?ms=1000"]
    results = [r async for r in client.fetch_many(
        urls, concurrency=1, timeout=fetchd.Timeout(queue=0.1), retries=0)]
    kinds = sorted(r.error.kind.value if r.error else "ok" for r in results)
    assert kinds == ["QUEUE_TIMEOUT", "ok"]


async def test_async_iterable_and_batches_beyond_the_server_limit(
        start_fetchd, targets):
    small = start_fetchd("--max_batch_size=50")

    async def urls():
        for i in range(230):
            if i % 60 == 0:
                await asyncio.sleep(0.02)  # a producer that pauses
            yield f"{targets.http}/ok?i={i}"

    # The client doesn't know the limit: it learns it from the refusal of
    # a too large message and sends what fetchd did not read again.
    async with fetchd.Client(small.address) as c:
        results = [r async for r in c.fetch_many(urls(), concurrency=32)]
        assert sorted(r.index for r in results) == list(range(230))
        assert all(r.ok and r.url.endswith(f"i={r.index}") for r in results)
        assert c._max_batch == 50
        ordered = [r.index async for r in c.fetch_many(
            [f"{targets.http}/ok?i={i}" for i in range(120)], ordered=True)]
        assert ordered == list(range(120))


async def test_empty_input_yields_nothing(client):
    assert [r async for r in client.fetch_many([])] == []
    with pytest.raises(TypeError):
        async for _ in client.fetch_many("http://127.0.0.1/"):
            pass


def slow_urls(targets, n):
    # The first answers at once; the rest would take a minute.
    return [f"{targets.http}/ok"] + \
        [f"{targets.http}/slow?ms=60000&i={uuid.uuid4()}" for _ in range(n)]


async def test_break_cancels_requests_in_fetchd(client, server, targets):
    async for r in client.fetch_many(slow_urls(targets, 40), concurrency=41):
        assert r.index == 0
        assert await asyncio.to_thread(
            server.metric, "fetch_in_flight_transfers") > 0
        break
    assert await wait_for_metric(server, "fetch_in_flight_transfers", 0) == 0
    assert await wait_for_metric(server, "fetch_pending_requests", 0) == 0


async def test_aclosing_cancels_at_once(client, server, targets):
    async with contextlib.aclosing(
            client.fetch_many(slow_urls(targets, 40), concurrency=41)) as rs:
        async for r in rs:
            break
    assert await wait_for_metric(server, "fetch_in_flight_transfers", 0,
                                 timeout=5) == 0


async def test_task_cancel_cancels_requests_in_fetchd(client, server,
                                                      targets):
    first = asyncio.Event()

    async def consume():
        async for _ in client.fetch_many(slow_urls(targets, 40),
                                         concurrency=41):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    assert await asyncio.to_thread(
        server.metric, "fetch_in_flight_transfers") > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_for_metric(server, "fetch_in_flight_transfers", 0) == 0
    assert await wait_for_metric(server, "fetch_pending_requests", 0) == 0
