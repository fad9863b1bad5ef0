#!/usr/bin/python3
"""py_client: the Python clients of the fetchd benchmark (aiohttp, httpx, and
fetchd's own Python client).

Sends N GETs of one URL with at most C in flight, the way an aiohttp or
httpx user would write it, reads every body and prints the same JSON line as
bench/raw_curl_multi and bench/fetchd_load:

  {"requests":N,"ok":N,"seconds":S,"bytes":B,"peak_rss_kib":K}

  aiohttp: one ClientSession, TCPConnector(limit=C, limit_per_host=C), C
           tasks pulling from a shared counter (a bounded gather).
  httpx:   one AsyncClient, Limits(max_connections=C,
           max_keepalive_connections=C), the same C tasks; --http2 asks for
           HTTP/2 (needs python3-h2).
  fetchd:  the fetchd package (client/python) against --server: one
           Client, one fetch_many() over the N requests with concurrency C
           (batches of the client's default size).

Run with Debian's /usr/bin/python3 (python3-aiohttp, python3-httpx; for
fetchd, PYTHONPATH reaching the staged package, build/client/python/site).
--cacert trusts that CA for https URLs. Only loopback URLs are accepted.

Exit status: 0 when every request was ok, 1 when some failed, 2 on a usage
error.
"""

import argparse
import asyncio
import json
import ssl
import sys
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def drive(fetch_one, requests, concurrency):
    """Runs fetch_one() `requests` times, `concurrency` at once.

    Returns (ok, bytes, failures): fetch_one returns (status, body length).
    """
    next_index = 0
    ok = 0
    total = 0
    failures = {}

    async def worker():
        nonlocal next_index, ok, total
        while next_index < requests:
            next_index += 1
            try:
                status, n = await fetch_one()
            except Exception as e:  # the peer's own error types vary
                key = type(e).__name__
                failures[key] = failures.get(key, 0) + 1
                continue
            total += n
            if status == 200:
                ok += 1
            else:
                key = f"status {status}"
                failures[key] = failures.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, total, failures


async def run_aiohttp(args, ssl_ctx):
    import aiohttp
    connector = aiohttp.TCPConnector(limit=args.concurrency,
                                     limit_per_host=args.concurrency,
                                     ssl=ssl_ctx if ssl_ctx else None)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trust_env=False) as session:

        async def fetch_one():
            async with session.get(args.url) as resp:
                body = await resp.read()
                return resp.status, len(body)

        start = time.perf_counter()
        result = await drive(fetch_one, args.requests, args.concurrency)
        return result, time.perf_counter() - start


async def run_httpx(args, ssl_ctx):
    import httpx
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, http2=args.http2,
                                 verify=ssl_ctx if ssl_ctx else True,
                                 timeout=args.timeout,
                                 trust_env=False) as client:

        async def fetch_one():
            resp = await client.get(args.url)
            return resp.status_code, len(resp.content)

        start = time.perf_counter()
        result = await drive(fetch_one, args.requests, args.concurrency)
        return result, time.perf_counter() - start


async def run_fetchd(args, ssl_ctx):
    import itertools

    import fetchd
    options = {"timeout": args.timeout}
    if args.cacert:
        options["ssl"] = fetchd.TargetTLS(ca=args.cacert)
    if args.http2:
        options["http_version"] = "2"
    ok = 0
    total = 0
    failures = {}
    async with fetchd.Client(args.server) as client:
        start = time.perf_counter()
        async for resp in client.fetch_many(
                itertools.repeat(args.url, args.requests),
                concurrency=args.concurrency, **options):
            status = resp.status
            if status == 200 and resp.raw.error == 0:
                ok += 1
                total += len(resp.content)
            else:
                key = str(resp.error) if resp.error else f"status {status}"
                failures[key] = failures.get(key, 0) + 1
        return (ok, total, failures), time.perf_counter() - start


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lib", choices=("aiohttp", "httpx", "fetchd"),
                   required=True)
    p.add_argument("--server", default="127.0.0.1:50051",
                   help="fetchd's address (--lib fetchd)")
    p.add_argument("--url", required=True)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--timeout", type=float, default=60.0,
                   help="total timeout per request, seconds")
    p.add_argument("--cacert", help="CA file to trust for https URLs")
    p.add_argument("--http2", action="store_true",
                   help="httpx and fetchd: HTTP/2")
    args = p.parse_args(argv)
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or url.hostname not in LOOPBACK:
        print(f"py_client: --url {args.url!r} is not http(s) on a loopback "
              "host; benchmarks stay local", file=sys.stderr)
        return 2
    if args.requests <= 0 or args.concurrency <= 0:
        print("py_client: --requests and --concurrency must be positive",
              file=sys.stderr)
        return 2
    ssl_ctx = ssl.create_default_context(cafile=args.cacert) \
        if args.cacert else None
    run = {"aiohttp": run_aiohttp, "httpx": run_httpx,
           "fetchd": run_fetchd}[args.lib]
    (ok, total, failures), seconds = asyncio.run(run(args, ssl_ctx))
    for reason, count in failures.items():
        print(f"py_client: {count} x {reason}", file=sys.stderr)
    print(json.dumps({"requests": args.requests, "ok": ok,
                      "seconds": round(seconds, 6), "bytes": total,
                      "peak_rss_kib": peak_rss_kib()}, separators=(",", ":")))
    return 0 if ok == args.requests else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
