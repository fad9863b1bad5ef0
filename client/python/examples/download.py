#!/usr/bin/python3
"""Download a large file through fetchd with a tqdm progress bar.

The body streams through fetchd in chunks, read only as fast as this
script writes them, so memory stays flat whatever the size.

  download.py --server 127.0.0.1:50051 https://example.org/big.iso big.iso
"""

import argparse
import asyncio
import sys

from tqdm import tqdm

import fetchd


async def download(server, url, path, quiet):
    async with fetchd.Client(server) as client:
        async with client.stream(url, timeout=fetchd.Timeout(
                connect=10, read=30)) as resp:
            if resp.error:
                print(f"download: {url}: {resp.error}", file=sys.stderr)
                return 1
            if not resp.ok:
                print(f"download: {url}: HTTP {resp.status}", file=sys.stderr)
                return 1
            with open(path, "wb") as f, tqdm(
                    total=resp.content_length, unit="B", unit_scale=True,
                    desc=path, disable=quiet, file=sys.stderr) as bar:
                async for chunk in resp.iter_chunked(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
            print(f"{path}: {resp.bytes_received} bytes")
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("url")
    p.add_argument("path")
    args = p.parse_args(argv)
    try:
        return asyncio.run(download(args.server, args.url, args.path,
                                    args.quiet))
    except fetchd.PayloadError as e:
        print(f"download: {args.url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
