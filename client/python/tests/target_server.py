#!/usr/bin/python3
"""target_server: the local HTTP and WebSocket targets of the Python client's
tests and examples (aiohttp, Debian's python3-aiohttp), in their own process
so that their CPU and memory are not the client's.

Listens on 127.0.0.1 port 0 (plain HTTP, and HTTPS when --tls-cert and
--tls-key are given) and writes {"http": PORT, "https": PORT} to --port-file
once serving. Endpoints:

  /ok                    200 "ok"
  /json                  200 {"hello": "fetchd"}
  /echo                  200 JSON of the request: method, path, query
                         (pairs), headers (pairs), body (text), content_type
  /status/{code}         that status
  /redirect/{n}          302 to /redirect/{n-1}; /redirect/0 is /ok
  /slow?ms=N             200 "slow" after N ms
  /stall                 headers and "x" at once, then nothing for 30 s
  /flaky/{key}?fail=N    503 for the first N requests of that key, then 200
                         with the attempt number
  /bytes?n=N             N bytes (a repeating pattern), streamed in 64 KiB
                         writes with Content-Length
  /latin1                "café" in ISO-8859-1, charset in Content-Type
  /cookie/set, /cookie/get   Set-Cookie: session=abc; the Cookie header back
  /html/{i}              an HTML page titled "Page {i}"
  /api/users/{id}        JSON user {id, name}; ids divisible by 5 answer 503
                         the first time; id 13 takes 5 s
  /ws                    WebSocket echo (text and binary); "close" closes
                         with 4000
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

from aiohttp import WSMsgType, web

PATTERN = bytes(range(256)) * 256  # 64 KiB


async def ok(request):
    return web.Response(text="ok")


async def json_endpoint(request):
    return web.json_response({"hello": "fetchd"})


async def echo(request):
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query": list(request.query.items()),
        "headers": list(request.headers.items()),
        "body": body.decode("utf-8", "replace"),
        "content_type": request.headers.get("Content-Type", ""),
    })


async def status(request):
    return web.Response(status=int(request.match_info["code"]),
                        text="status")


async def redirect(request):
    n = int(request.match_info["n"])
    raise web.HTTPFound("/ok" if n <= 0 else f"/redirect/{n - 1}")


async def slow(request):
    await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
    return web.Response(text="slow")


async def stall(request):
    resp = web.StreamResponse()
    resp.content_length = 2
    await resp.prepare(request)
    await resp.write(b"x")
    await asyncio.sleep(30)
    await resp.write(b"y")
    return resp


async def flaky(request):
    counts = request.app["flaky"]
    key = request.match_info["key"]
    counts[key] = counts.get(key, 0) + 1
    if counts[key] <= int(request.query.get("fail", "1")):
        return web.Response(status=503, text="try again")
    return web.Response(text=f"attempt {counts[key]}")


async def bytes_endpoint(request):
    n = int(request.query["n"])
    resp = web.StreamResponse()
    resp.content_length = n
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    left = n
    while left > 0:
        piece = PATTERN if left >= len(PATTERN) else PATTERN[:left]
        await resp.write(piece)
        left -= len(piece)
    await resp.write_eof()
    return resp


async def latin1(request):
    return web.Response(body="café".encode("latin-1"),
                        headers={"Content-Type":
                                 "text/plain; charset=ISO-8859-1"})


async def cookie_set(request):
    resp = web.Response(text="set")
    resp.set_cookie("session", "abc")
    return resp


async def cookie_get(request):
    return web.Response(text=request.headers.get("Cookie", ""))


async def html(request):
    i = request.match_info["i"]
    return web.Response(
        text=f"<html><head><title>Page {i}</title></head>"
             f"<body><h1>{i}</h1></body></html>",
        content_type="text/html")


async def api_user(request):
    uid = int(request.match_info["id"])
    seen = request.app["users"]
    seen[uid] = seen.get(uid, 0) + 1
    if uid % 5 == 0 and seen[uid] == 1:
        return web.Response(status=503, text="busy")
    if uid == 13:
        await asyncio.sleep(5)
    return web.json_response({"id": uid, "name": f"user{uid}"})


async def ws_echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close(code=4000, message=b"asked")
                break
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def make_app():
    app = web.Application()
    app["flaky"] = {}
    app["users"] = {}
    app.router.add_get("/ok", ok)
    app.router.add_get("/json", json_endpoint)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stall", stall)
    app.router.add_route("*", "/flaky/{key}", flaky)
    app.router.add_get("/bytes", bytes_endpoint)
    app.router.add_get("/latin1", latin1)
    app.router.add_get("/cookie/set", cookie_set)
    app.router.add_get("/cookie/get", cookie_get)
    app.router.add_get("/html/{i}", html)
    app.router.add_get("/api/users/{id}", api_user)
    app.router.add_get("/ws", ws_echo)
    return app


async def serve(args):
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    ports = {"http": site._server.sockets[0].getsockname()[1]}
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await tls_site.start()
        ports["https"] = tls_site._server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.replace(tmp, args.port_file)
    await asyncio.Event().wait()


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-file", required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
