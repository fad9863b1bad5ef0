#!/usr/bin/python3
"""A WebSocket echo through fetchd: send each argument, print each reply.

  ws_echo.py --server 127.0.0.1:50051 ws://127.0.0.1:8080/ws hello world
"""

import argparse
import asyncio
import sys

import fetchd


async def echo(server, url, messages):
    async with fetchd.Client(server) as client:
        async with client.ws_connect(url) as ws:
            for text in messages:
                await ws.send_str(text)
                msg = await ws.receive()
                if msg.type is not fetchd.WSMsgType.TEXT:
                    print(f"ws_echo: got {msg.type.name}", file=sys.stderr)
                    return 1
                print(msg.data)
            await ws.close()
            print(f"closed {ws.close_code}")
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("url")
    p.add_argument("messages", nargs="+")
    args = p.parse_args(argv)
    try:
        return asyncio.run(echo(args.server, args.url, args.messages))
    except fetchd.WSHandshakeError as e:
        print(f"ws_echo: {args.url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
