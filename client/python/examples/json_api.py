#!/usr/bin/python3
"""Call a JSON API concurrently, with retries and a per-call timeout.

What aiohttp users hand-roll (a retry loop with backoff around each call, a
ClientTimeout, a Semaphore) is options here: fetchd retries 5xx answers and
connection failures with jittered backoff, and each call gets its own
timeout.

  json_api.py --server 127.0.0.1:50051 --api http://127.0.0.1:8080/api --ids 1-20

Prints one JSON line per id (the user, or the error) and a summary line.
"""

import argparse
import asyncio
import json
import sys

import fetchd

RETRY = fetchd.Retry(max_attempts=3, backoff=0.05, max_backoff=0.5)


async def fetch_users(server, api, ids, timeout):
    requests = [fetchd.Request(f"{api}/users/{i}", id=str(i),
                               headers={"Accept": "application/json"})
                for i in ids]
    out = {}
    async with fetchd.Client(server) as client:
        async for resp in client.fetch_many(requests, concurrency=16,
                                            retries=RETRY,
                                            timeout=fetchd.Timeout(
                                                total=timeout)):
            if resp.ok:
                out[resp.id] = {"user": resp.json(),
                                "attempts": resp.attempts}
            else:
                why = str(resp.error) if resp.error else f"HTTP {resp.status}"
                out[resp.id] = {"error": why, "attempts": resp.attempts}
    return out


def parse_ids(text):
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--api", required=True, help="base URL of the API")
    p.add_argument("--ids", default="1-20", help="FIRST-LAST")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="seconds per attempt")
    args = p.parse_args(argv)
    ids = parse_ids(args.ids)
    results = asyncio.run(fetch_users(args.server, args.api, ids,
                                      args.timeout))
    for i in ids:
        print(json.dumps({"id": i, **results[str(i)]}))
    failed = sum(1 for r in results.values() if "error" in r)
    print(f"{len(results) - failed} ok, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
