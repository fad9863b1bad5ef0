"""One request at a time through the real fetchd: every method, the request
options and the Response fields."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import fetchd


async def test_get_response_fields(client, targets):
    r = await client.get(f"{targets.http}/ok")
    assert r.ok and r.error is None
    assert r.status == 200 and r.reason == "OK"
    assert r.content == b"ok" and r.text() == "ok"
    assert r.url == f"{targets.http}/ok"
    assert r.final_url == f"{targets.http}/ok"
    assert r.history == []
    assert r.attempts == 1
    assert r.index == 0
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["CONTENT-LENGTH"] == "2"
    assert "Content-Type" in r.headers and "x-nope" not in r.headers
    assert r.http_version == "1.1"
    assert r.remote_address.startswith("127.0.0.1:")
    assert r.timings.total > 0 and r.timings.total >= r.timings.first_byte
    assert r.elapsed == r.timings.total
    assert r.raise_for_status() is r


async def test_json_and_text_charset(client, targets):
    r = await client.get(f"{targets.http}/json")
    assert r.json() == {"hello": "fetchd"}
    assert r.content_type == "application/json"
    latin = await client.get(f"{targets.http}/latin1")
    assert latin.charset == "ISO-8859-1"
    assert latin.text() == "café"
    assert latin.content == "café".encode("latin-1")


async def test_every_method(client, targets):
    for name in ("get", "post", "put", "patch", "delete", "options"):
        r = await getattr(client, name)(f"{targets.http}/echo")
        assert r.status == 200, name
        assert r.json()["method"] == name.upper()
    r = await client.head(f"{targets.http}/echo")
    assert r.status == 200 and r.content == b""
    r = await client.request("put", f"{targets.http}/echo", data=b"raw")
    assert r.json()["method"] == "PUT" and r.json()["body"] == "raw"


async def test_params_and_headers(client, targets):
    r = await client.get(f"{targets.http}/echo?a=1",
                         params={"b": "two words", "tag": ["x", "y"],
                                 "on": True},
                         headers=[("X-One", "1"), ("X-One", "2")])
    echo = r.json()
    assert echo["query"] == [["a", "1"], ["b", "two words"], ["tag", "x"],
                             ["tag", "y"], ["on", "true"]]
    assert [v for k, v in echo["headers"] if k == "X-One"] == ["1", "2"]
    assert r.final_url.endswith("/echo?a=1&b=two%20words&tag=x&tag=y&on=true")


async def test_bodies_json_form_files(client, targets):
    r = await client.post(f"{targets.http}/echo", json={"n": [1, 2]})
    assert r.json()["content_type"] == "application/json"
    assert r.json()["body"] == '{"n":[1,2]}'

    r = await client.post(f"{targets.http}/echo", data={"a": "1", "b": "x y"})
    assert r.json()["content_type"] == "application/x-www-form-urlencoded"
    assert r.json()["body"] == "a=1&b=x%20y"

    r = await client.post(f"{targets.http}/echo", form=[("k", "v")])
    assert r.json()["body"] == "k=v"

    r = await client.post(f"{targets.http}/echo", data={"field": "f"},
                          files={"up": ("a.txt", b"hello", "text/plain")})
    echo = r.json()
    assert echo["content_type"].startswith("multipart/form-data; boundary=")
    assert 'name="field"' in echo["body"] and "hello" in echo["body"]
    assert 'filename="a.txt"' in echo["body"]
    assert "Content-Type: text/plain" in echo["body"]

    with pytest.raises(ValueError):
        await client.post(f"{targets.http}/echo", json={}, data=b"x")


async def test_credentials(client, targets):
    r = await client.get(f"{targets.http}/echo", auth=("user", "pw"))
    headers = dict(r.json()["headers"])
    assert headers["Authorization"] == "Basic dXNlcjpwdw=="
    r = await client.get(f"{targets.http}/echo",
                         auth=fetchd.BasicAuth("user", "pw"))
    assert dict(r.json()["headers"])["Authorization"].startswith("Basic ")
    r = await client.get(f"{targets.http}/echo", bearer_token="tok")
    assert dict(r.json()["headers"])["Authorization"] == "Bearer tok"


async def test_redirects_and_history(client, targets):
    r = await client.get(f"{targets.http}/redirect/2")
    assert r.status == 200 and r.content == b"ok"
    assert r.url == f"{targets.http}/redirect/2"
    assert r.final_url == f"{targets.http}/ok"
    assert r.history == [(f"{targets.http}/redirect/2", 302),
                         (f"{targets.http}/redirect/1", 302),
                         (f"{targets.http}/redirect/0", 302)]
    assert r.history[0].status == 302
    r = await client.get(f"{targets.http}/redirect/2", allow_redirects=False)
    assert r.status == 302 and r.headers["location"] == "/redirect/1"
    r = await client.get(f"{targets.http}/redirect/5", max_redirects=2)
    assert r.error.kind is fetchd.ErrorKind.TOO_MANY_REDIRECTS


async def test_http_errors_are_data(client, targets):
    r = await client.get(f"{targets.http}/status/404")
    assert r.status == 404 and not r.ok and r.error is None
    with pytest.raises(fetchd.HTTPStatusError) as e:
        r.raise_for_status()
    assert e.value.status == 404 and e.value.response is r

    r = await client.get(f"{targets.http}/status/404", raise_for_status=True)
    assert r.error.kind == "HTTP_STATUS" and r.status == 404
    with pytest.raises(fetchd.HTTPStatusError):
        r.raise_for_status()

    r = await client.get(f"{targets.refused}/", retries=0)
    assert r.status == 0 and not r.ok
    assert r.error.kind is fetchd.ErrorKind.CONNECT and r.error.message
    with pytest.raises(fetchd.ResponseError) as e:
        r.raise_for_status()
    assert e.value.kind is fetchd.ErrorKind.CONNECT
    assert not isinstance(e.value, fetchd.HTTPStatusError)

    r = await client.get("http://10.1.2.3/")
    assert r.error.kind is fetchd.ErrorKind.DENIED
    r = await client.get("ftp://127.0.0.1/")
    assert r.error.kind is fetchd.ErrorKind.DENIED
    r = await client.get(f"{targets.http}/ok", headers={"X": "a\r\nb"})
    assert r.error.kind is fetchd.ErrorKind.INVALID_REQUEST


async def test_timeouts(client, targets):
    r = await client.get(f"{targets.http}/slow?ms=3000", timeout=0.2,
                         retries=0)
    assert r.error.kind is fetchd.ErrorKind.TOTAL_TIMEOUT
    assert r.error.kind.is_timeout
    assert r.timings.total < 2

    r = await client.get(f"{targets.http}/stall", retries=0,
                         timeout=fetchd.Timeout(total=10, read=0.2))
    assert r.error.kind is fetchd.ErrorKind.READ_TIMEOUT

    r = await client.get(f"{targets.http}/slow?ms=10",
                         timeout=fetchd.Timeout(total=5, connect=1))
    assert r.ok


async def test_retries(client, targets):
    fast = fetchd.Retry(max_attempts=3, backoff=0.01, max_backoff=0.02)
    r = await client.get(f"{targets.http}/flaky/{uuid.uuid4()}?fail=2",
                         retries=fast)
    assert r.status == 200 and r.attempts == 3
    assert r.content == b"attempt 3"

    r = await client.get(f"{targets.http}/flaky/{uuid.uuid4()}?fail=5",
                         retries=fetchd.Retry(max_attempts=2, backoff=0.01))
    assert r.status == 503 and r.attempts == 2 and r.error is None

    r = await client.get(f"{targets.http}/flaky/{uuid.uuid4()}?fail=1",
                         retries=0)
    assert r.status == 503 and r.attempts == 1

    # retries=N is N more attempts; only the statuses asked for retry.
    key = uuid.uuid4()
    r = await client.get(f"{targets.http}/flaky/{key}?fail=1",
                         retries=fetchd.Retry(max_attempts=4, backoff=0.01,
                                              on_status=[500]))
    assert r.status == 503 and r.attempts == 1

    r = await client.get(f"{targets.refused}/",
                         retries=fetchd.Retry(max_attempts=2, backoff=0.01,
                                              on=["CONNECT"]))
    assert r.error.kind is fetchd.ErrorKind.CONNECT and r.attempts == 2


async def test_target_tls(client, targets, pki):
    r = await client.get(f"{targets.https}/ok",
                         ssl=fetchd.TargetTLS(ca=pki.ca))
    assert r.status == 200 and r.content == b"ok"
    with open(pki.ca, "rb") as f:
        r = await client.get(f"{targets.https}/ok",
                             ssl=fetchd.TargetTLS(ca=f.read()))
    assert r.ok
    r = await client.get(f"{targets.https}/ok", retries=0)
    assert r.error.kind is fetchd.ErrorKind.TLS


async def test_body_limit_and_decompress_flags(client, targets):
    r = await client.get(f"{targets.http}/bytes?n=100000", max_body_bytes=1000)
    assert r.error.kind is fetchd.ErrorKind.BODY_TOO_LARGE
    r = await client.get(f"{targets.http}/bytes?n=1000", decompress=False,
                         http_version="1.1")
    assert r.ok and len(r.content) == 1000


async def test_client_defaults_apply_under_call_options(server, targets):
    async with fetchd.Client(server.address, headers={"X-Default": "d"},
                             timeout=0.2, retries=0) as c:
        r = await c.get(f"{targets.http}/echo", headers={"X-Own": "o"})
        headers = r.json()["headers"]
        assert ["X-Default", "d"] in headers and ["X-Own", "o"] in headers
        r = await c.get(f"{targets.http}/slow?ms=2000")
        assert r.error.kind is fetchd.ErrorKind.TOTAL_TIMEOUT
        r = await c.get(f"{targets.http}/slow?ms=500", timeout=5)
        assert r.ok


async def test_options_are_checked_before_any_rpc(client, targets):
    with pytest.raises(TypeError):
        await client.get(f"{targets.http}/ok", bogus=1)
    with pytest.raises(TypeError):
        await client.get(f"{targets.http}/ok", timeout="10")
    with pytest.raises(ValueError):
        await client.get(f"{targets.http}/ok", http_version="3")


async def test_concurrent_calls_share_one_channel(client, targets):
    rs = await asyncio.gather(*(client.get(f"{targets.http}/ok")
                                for _ in range(50)))
    assert all(r.ok for r in rs)
    assert client._channel is not None


def test_headers_multidict():
    h = fetchd.Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"),
                        ("X", "y")])
    assert h["SET-COOKIE"] == "a=1"
    assert h.getall("set-cookie") == ["a=1", "b=2"]
    assert h.get("missing") is None and h.get("missing", "d") == "d"
    assert h.getall("missing", []) == []
    with pytest.raises(KeyError):
        h.getall("missing")
    assert len(h) == 3 and list(h) == ["Set-Cookie", "set-cookie", "X"]
    assert h.items()[1] == ("set-cookie", "b=2")
