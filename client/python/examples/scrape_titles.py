#!/usr/bin/python3
"""Scrape the <title> of many pages through fetchd, with BeautifulSoup.

The aiohttp version of this is a ClientSession, a Semaphore and
gather(..., return_exceptions=True); here it is one fetch_many() loop, and a
page that fails is a result with an error, not an exception.

  scrape_titles.py --server 127.0.0.1:50051 https://example.org/ ...
  scrape_titles.py --server 127.0.0.1:50051 < urls.txt

Prints "URL<TAB>title" per page (or "URL<TAB>error: KIND message"), in
input order.
"""

import argparse
import asyncio
import sys

from bs4 import BeautifulSoup

import fetchd


async def scrape(server, urls, concurrency):
    titles = {}
    async with fetchd.Client(server) as client:
        async for resp in client.fetch_many(urls, concurrency=concurrency,
                                            timeout=10, retries=2):
            if resp.error:
                titles[resp.index] = f"error: {resp.error}"
            elif not resp.ok:
                titles[resp.index] = f"error: HTTP {resp.status}"
            else:
                soup = BeautifulSoup(resp.text(), "html.parser")
                title = soup.title.string if soup.title else None
                titles[resp.index] = (title or "").strip()
    return [(url, titles[i]) for i, url in enumerate(urls)]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("urls", nargs="*", help="default: one per stdin line")
    args = p.parse_args(argv)
    urls = args.urls or [line.strip() for line in sys.stdin if line.strip()]
    for url, title in asyncio.run(scrape(args.server, urls,
                                         args.concurrency)):
        print(f"{url}\t{title}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
